package dmsnap.target;

/**
 * The status of a {@code snapshot} or {@code snapshot-merge} target (spec 6.1), libdm's
 * {@code dm_status_snapshot}: exactly one of {@link Invalid}, {@link MergeFailed},
 * {@link Overflow} (in that priority order), else the COW's {@link Usage}.
 */
public sealed interface SnapshotStatus extends TargetStatus {

    /**
     * A valid snapshot's COW usage, the kernel's {@code <allocated>/<total> <metadata>}. For
     * {@code snapshot-merge} it is the merge's progress: the allocated sectors shrink as chunks
     * merge, down to {@code metadataSectors} when the merge is complete.
     *
     * @param allocatedSectors sectors handed out, header and metadata included
     * @param totalSectors     the COW device's current size in sectors
     * @param metadataSectors  header and metadata area sectors
     */
    record Usage(long allocatedSectors, long totalSectors, long metadataSectors) implements SnapshotStatus {
        /** Sectors of copied data ({@code allocated - metadata}): for {@code snapshot-merge}, what is left to merge. */
        public long dataSectors() {
            return allocatedSectors - metadataSectors;
        }
    }

    /** The snapshot is invalid ({@code Invalid}): its I/O fails, origin writes skip it. */
    record Invalid() implements SnapshotStatus {}

    /** A merge step failed ({@code Merge failed}); only {@code snapshot-merge}. */
    record MergeFailed() implements SnapshotStatus {}

    /** A {@code PO} COW ran full on a snapshot write ({@code Overflow}): writes fail, reads work. */
    record Overflow() implements SnapshotStatus {}
}
