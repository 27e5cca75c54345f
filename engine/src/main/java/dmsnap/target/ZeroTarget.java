package dmsnap.target;

import java.util.List;

/** {@code zero}: reads return zeroes, writes are accepted and dropped ({@code dm-zero.c}). */
public final class ZeroTarget implements Target {
    public static final TargetType TYPE = new TargetType() {
        @Override
        public String name() {
            return "zero";
        }

        @Override
        public String version() {
            return "1.2.0";
        }

        @Override
        public Target create(TargetContext context, TargetArgs args) throws dmsnap.table.TableLoadException {
            if (args.size() != 0) {
                throw args.fail("No arguments required");
            }
            return new ZeroTarget();
        }
    };

    @Override
    public String typeName() {
        return "zero";
    }

    @Override
    public void map(IoRequest io) {
        if (io.op() == IoRequest.Op.READ) {
            readIfCached(io);
        }
    }

    /** Zeroes never wait. */
    @Override
    public boolean readIfCached(IoRequest io) {
        io.buffer().fill((byte) 0);
        return true;
    }

    @Override
    public Allocation allocation(long sector, long maxSectors) {
        return Allocation.hole(maxSectors);
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    @Override
    public List<String> tableArgs() {
        return List.of();
    }

    @Override
    public void close() {
        // Holds nothing.
    }
}
