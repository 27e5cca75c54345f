package dmsnap.store;

/**
 * A run of completed exceptions, as the kernel packs them: origin chunks {@code [oldChunk,
 * oldChunk + count]} map to COW chunks {@code [newChunk, newChunk + count]} ({@code count + 1}
 * chunks; {@code count} is 0..255 and a run never crosses a 256-chunk group).
 */
public record ExceptionRun(long oldChunk, long newChunk, int count) {
    public long lastOld() {
        return oldChunk + count;
    }

    public long lastNew() {
        return newChunk + count;
    }
}
