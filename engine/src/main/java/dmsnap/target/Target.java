package dmsnap.target;

import dmsnap.table.TableLoadException;
import java.io.IOException;
import java.util.List;

/**
 * One constructed table line. Built at table load (the constructor validates and opens but
 * starts no I/O); destroyed with its table. All I/O methods may be called concurrently; the
 * hooks are called by the device's control path, one at a time, in table order.
 */
public interface Target extends AutoCloseable {

    /** The target type's name, e.g. {@code linear}. */
    String typeName();

    /**
     * Performs {@code io}, whose sectors are relative to the start of this target and never
     * cross {@link #splitSectors} boundaries. Returns when the I/O is complete.
     *
     * @throws IOException the I/O failed (the caller sees EIO)
     */
    void map(IoRequest io) throws IOException, InterruptedException;

    /**
     * Performs READ {@code io} as {@link #map} does, but only if it completes without waiting (the
     * kernel's {@code REQ_NOWAIT} bio): its data from a page cache that holds it, no wait for the
     * device, a copy in flight or a lock held across I/O. Short locks held for no I/O are taken.
     *
     * @return false when it would wait (the default: a target that cannot tell); the caller then
     *     maps it the normal way, and the buffer may hold part of the data meanwhile
     * @throws IOException the read failed, as {@link #map} would have failed it
     */
    default boolean readIfCached(IoRequest io) throws IOException {
        return false;
    }

    /**
     * What backs this target's sectors from {@code sector} on (relative to the target), for at
     * most {@code maxSectors} (positive, inside the target): the first run of data or hole, at
     * least one sector long. Block status (NBD's {@code base:allocation}) asks it; it reads no
     * data and takes no lock that an I/O waits for.
     *
     * @throws IOException the state cannot be told (a failing device; the error target, whose
     *     reads fail; an invalid snapshot)
     */
    Allocation allocation(long sector, long maxSectors) throws IOException, InterruptedException;

    /**
     * The runs {@link #allocation} gives from {@code sector} on, one after the other, for at most
     * {@code maxSectors} or until {@code sink} says stop (a whole block status reply in one walk).
     * A target that walks them for less than a call each (a snapshot) does so.
     */
    default void allocationRuns(long sector, long maxSectors, AllocationSink sink)
            throws IOException, InterruptedException {
        for (long at = sector, end = sector + maxSectors; at < end; ) {
            Allocation a = allocation(at, end - at);
            if (!sink.accept(a.sectors(), a.depth())) {
                return;
            }
            at += a.sectors();
        }
    }

    /**
     * The snapshots this target's data can be compared with ({@link #changedRuns}), by device
     * name: those of the origin it maps, when it maps one. Empty for the others.
     */
    default java.util.Set<String> baselines() {
        return java.util.Set.of();
    }

    /**
     * Whether this target's sectors from {@code sector} on changed since snapshot {@code baseline}
     * was taken (one of {@link #baselines()}): their runs, changed or not, in order, for at most
     * {@code maxSectors} or until {@code sink} says stop (a whole block status reply in one walk).
     *
     * @throws IOException the baseline is not (or no longer) one of this target's: removed,
     *     invalid, merging
     */
    default void changedRuns(String baseline, long sector, long maxSectors, ChangeSink sink) throws IOException {
        throw new IOException("no snapshot " + baseline + " to compare " + typeName() + " with");
    }

    /** The largest I/O this target takes, aligned: requests are split at multiples of it. 0: no limit. */
    default long maxIoSectors() {
        return 0;
    }

    /**
     * Where requests of kind {@code op} are split ({@code max_io_len}, or a target's own
     * {@code dm_accept_partial_bio} rule): multiples of the returned sector count; 0: not split.
     */
    default long splitSectors(IoRequest.Op op) {
        return maxIoSectors();
    }

    /**
     * Whether this target reads through the page cache (the {@code writeback} cache mode's
     * buffered views). A reader that would split a large read into pieces read at once then reads
     * it whole: such pieces reach the file out of order, which costs the kernel's readahead.
     */
    default boolean readsThroughPageCache() {
        return false;
    }

    /** Whether a discard/write-zeroes may be sent to it (else the request fails as unsupported). */
    default boolean supportsDiscard() {
        return false;
    }

    /** The logical block size of the devices under this target: I/O must be aligned to it. */
    default int logicalBlockBytes() {
        return 512;
    }

    /**
     * The status {@code dmsetup status} prints (INFO), as a value; {@link StatusText} renders it.
     * Called under the device's control lock, so the table is not destroyed meanwhile.
     *
     * @throws IOException the state could not be read (the COW's size, for a snapshot)
     */
    default TargetStatus status() throws IOException {
        return TargetStatus.EMPTY; // linear, zero, error, snapshot-origin: the kernel prints nothing
    }

    /**
     * The arguments {@code dmsetup table} prints for this line (TABLE): the constructor's, with
     * devices by their canonical names and effective values (a snapshot's chunk size from its
     * COW). Empty for a target that prints none. Called under the device's control lock.
     */
    List<String> tableArgs();

    default void presuspend() {}

    default void postsuspend() {}

    /** May refuse the resume (the device then stays suspended). */
    default void preresume() throws TableLoadException {}

    default void resume() {}

    /** Releases devices and memory. Called once, when the table is destroyed. */
    @Override
    void close() throws IOException;
}
