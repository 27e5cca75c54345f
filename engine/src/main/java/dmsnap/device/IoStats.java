package dmsnap.device;

import dmsnap.target.IoRequest;
import java.util.concurrent.atomic.LongAdder;

/**
 * I/O counted where it enters a mapped device, as the kernel's per-disk statistics count it
 * ({@code /sys/block/dm-N/stat}): a request is counted when it completes, failed ones included;
 * a WRITE_ZEROES counts as a write of its length (as {@code op_stat_group} files it), a DISCARD
 * as a discard, a FLUSH as a flush. Requests an upper (stacked) device sends down are counted by
 * both devices, as in the kernel.
 *
 * <p>Thread-safe without locks: {@link LongAdder}s, so concurrent I/O threads do not contend on
 * one cache line and counting allocates nothing.
 */
public final class IoStats {
    private final LongAdder reads = new LongAdder();
    private final LongAdder readBytes = new LongAdder();
    private final LongAdder writes = new LongAdder();
    private final LongAdder writtenBytes = new LongAdder();
    private final LongAdder flushes = new LongAdder();
    private final LongAdder discards = new LongAdder();
    private final LongAdder discardedBytes = new LongAdder();
    private final LongAdder errors = new LongAdder();
    private final LongAdder cachedReads = new LongAdder();

    /**
     * The totals at one moment (each exact; the set is not one atomic snapshot).
     *
     * @param errors requests that failed (the caller got an error)
     * @param cachedReads reads answered without waiting ({@link MappedDevice#readIfCached}),
     *     failed ones included; also counted in {@code reads}
     */
    public record Totals(
            long reads,
            long readBytes,
            long writes,
            long writtenBytes,
            long flushes,
            long discards,
            long discardedBytes,
            long errors,
            long cachedReads) {}

    /** Counts one completed request; {@code cached}: a read answered without waiting. */
    void account(IoRequest io, boolean failed, boolean cached) {
        if (cached) {
            cachedReads.increment();
        }
        long bytes = io.lengthSectors() << 9;
        switch (io.op()) {
            case READ -> {
                reads.increment();
                readBytes.add(bytes);
            }
            case WRITE, WRITE_ZEROES -> {
                writes.increment();
                writtenBytes.add(bytes);
            }
            case FLUSH -> flushes.increment();
            case DISCARD -> {
                discards.increment();
                discardedBytes.add(bytes);
            }
        }
        if (failed) {
            errors.increment();
        }
    }

    public Totals totals() {
        return new Totals(
                reads.sum(),
                readBytes.sum(),
                writes.sum(),
                writtenBytes.sum(),
                flushes.sum(),
                discards.sum(),
                discardedBytes.sum(),
                errors.sum(),
                cachedReads.sum());
    }
}
