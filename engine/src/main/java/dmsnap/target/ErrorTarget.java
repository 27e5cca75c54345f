package dmsnap.target;

import java.io.IOException;
import java.util.List;

/** {@code error}: every I/O fails with EIO ({@code dm-target.c} io_err); arguments are ignored. */
public final class ErrorTarget implements Target {
    public static final TargetType TYPE = new TargetType() {
        @Override
        public String name() {
            return "error";
        }

        @Override
        public String version() {
            return "1.6.0";
        }

        @Override
        public Target create(TargetContext context, TargetArgs args) {
            return new ErrorTarget();
        }
    };

    @Override
    public String typeName() {
        return "error";
    }

    @Override
    public void map(IoRequest io) throws IOException {
        if (io.op() == IoRequest.Op.FLUSH) {
            // io_err_ctr leaves num_flush_bios at 0: dm core never sends this target a flush, so a
            // flush of a table with an error line (a COW that fails past its first MiB) succeeds.
            return;
        }
        throw new IOException("I/O error (error target)");
    }

    /** As its reads: they fail. */
    @Override
    public Allocation allocation(long sector, long maxSectors) throws IOException {
        throw new IOException("I/O error (error target)");
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    /** The kernel's error target prints no arguments, whatever the table said. */
    @Override
    public List<String> tableArgs() {
        return List.of();
    }

    @Override
    public void close() {
        // Holds nothing.
    }
}
