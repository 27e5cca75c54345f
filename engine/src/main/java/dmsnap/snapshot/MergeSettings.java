package dmsnap.snapshot;

/**
 * How the merge batches its commits (see {@link Merger}): steps of {@code batchStepBytes} or
 * more are committed together, up to {@code commitBatch} steps (or 64 MiB) per origin flush and
 * COW flush; smaller steps commit one at a time, as the kernel's. Tests batch small steps to cut
 * the power between batches.
 */
public record MergeSettings(long batchStepBytes, int commitBatch) {
    /** 1 MiB steps (one area of 4 KiB chunks), 64 per batch. */
    public static final MergeSettings DEFAULTS = new MergeSettings(Merger.BATCH_STEP_BYTES, Merger.COMMIT_BATCH);

    public MergeSettings {
        if (batchStepBytes < 1 || commitBatch < 1) {
            throw new IllegalArgumentException("merge batches need batchStepBytes >= 1 and commitBatch >= 1, not "
                    + batchStepBytes + " and " + commitBatch);
        }
    }
}
