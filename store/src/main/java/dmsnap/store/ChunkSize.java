package dmsnap.store;

/**
 * A chunk size in 512-byte sectors, always a power of two (or 0 = "not set", as a handover
 * destination or a persistent table that takes the size from the COW header).
 *
 * @param sectors chunk size in sectors
 */
public record ChunkSize(long sectors) {
    /** INT_MAX >> 9: the kernel's upper bound for a chunk size in sectors. */
    public static final long MAX_SECTORS = Integer.MAX_VALUE >> 9;

    public static final ChunkSize NOT_SET = new ChunkSize(0);

    public ChunkSize {
        if (sectors < 0 || (sectors != 0 && Long.bitCount(sectors) != 1)) {
            throw new IllegalArgumentException("chunk size must be 0 or a power of two: " + sectors);
        }
    }

    public boolean isSet() {
        return sectors != 0;
    }

    /** log2(sectors). */
    public int shift() {
        return Long.numberOfTrailingZeros(sectors);
    }

    /** sectors - 1. */
    public long mask() {
        return sectors - 1;
    }

    public long bytes() {
        return sectors << 9;
    }

    /** The chunk holding {@code sector}. */
    public long chunkOf(long sector) {
        return sector >>> shift();
    }

    /** The first sector of {@code chunk}. */
    public long firstSector(long chunk) {
        return chunk << shift();
    }

    /**
     * The kernel's validation of a chunk size ({@code dm_exception_store_set_chunk_size}): a power
     * of two, a multiple of both devices' logical block size, at most {@link #MAX_SECTORS}.
     *
     * @return null when valid, else the kernel's reason ("Chunk size is not a power of 2", ...)
     */
    public static String invalidReason(long sectors, int cowBlockBytes, int originBlockBytes) {
        if (sectors <= 0 || Long.bitCount(sectors) != 1) {
            return "Chunk size is not a power of 2";
        }
        long bytes = sectors << 9;
        if (bytes % cowBlockBytes != 0 || bytes % originBlockBytes != 0) {
            return "Chunk size is not a multiple of device blocksize";
        }
        if (sectors > MAX_SECTORS) {
            return "Chunk size is too high";
        }
        return null;
    }

    @Override
    public String toString() {
        return Long.toString(sectors);
    }
}
