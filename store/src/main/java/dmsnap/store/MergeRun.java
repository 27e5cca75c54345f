package dmsnap.store;

/**
 * The next run to merge, from {@code prepare_merge}: origin chunks {@code [lastOld - count + 1,
 * lastOld]} are stored in COW chunks {@code [lastNew - count + 1, lastNew]}, the last
 * {@code count} entries of the exception list, inside one area.
 */
public record MergeRun(long lastOld, long lastNew, int count) {
    public long firstOld() {
        return lastOld - count + 1;
    }

    public long firstNew() {
        return lastNew - count + 1;
    }
}
