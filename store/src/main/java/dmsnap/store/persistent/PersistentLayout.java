package dmsnap.store.persistent;

import dmsnap.store.ChunkSize;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The kernel's persistent exception store layout ({@code dm-snap-persistent.c}), little-endian:
 *
 * <pre>
 *  chunk 0        header: le32 magic 0x70416e53 ("SnAp"), le32 valid, le32 version (1),
 *                 le32 chunk_size (sectors); the rest of the chunk is zero
 *  chunk 1        area 0: E = chunk_bytes / 16 entries of {le64 old_chunk, le64 new_chunk}
 *  chunks 2..E+1  data chunks that area 0's entries point at
 *  chunk E+2      area 1, then its E data chunks, and so on: area k is at chunk 1 + k * (E + 1)
 * </pre>
 *
 * The exception list ends at the first entry whose new_chunk is 0 (chunk 0 is the header, so 0
 * is never a real destination); entries after it are ignored. When an area fills up the next
 * area is zeroed before the full one is written, so the chain always ends.
 *
 * <p>The bytes are read and written only through {@link DiskHeader} (the header) and {@link
 * AreaEntries} (an area's entries), with the two layouts below; {@link AreaWalker} walks the
 * list for both the table load and {@code dmsnap cow check}.
 */
final class PersistentLayout {
    /** "SnAp" read as a little-endian 32-bit word. */
    static final int SNAP_MAGIC = 0x70416e53;

    static final int SNAPSHOT_DISK_VERSION = 1;
    /** The header's fields ({@code __le32}). */
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** An entry's fields ({@code __le64 old_chunk, new_chunk}). */
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static final int EXCEPTION_BYTES = 16;
    /** The first data chunk: after the header (0) and area 0 (1). */
    static final long FIRST_DATA_CHUNK = 2;
    /** The kernel's default chunk size for a new persistent COW when the table gives 0. */
    static final long DEFAULT_CHUNK_SECTORS = 32;

    private final ChunkSize chunkSize;
    private final long exceptionsPerArea;

    PersistentLayout(ChunkSize chunkSize) {
        if (!chunkSize.isSet()) {
            throw new IllegalArgumentException("a persistent layout needs a chunk size");
        }
        this.chunkSize = chunkSize;
        this.exceptionsPerArea = chunkSize.bytes() / EXCEPTION_BYTES;
    }

    ChunkSize chunkSize() {
        return chunkSize;
    }

    long chunkBytes() {
        return chunkSize.bytes();
    }

    /** E: entries per area, chunk_size * 32. */
    long exceptionsPerArea() {
        return exceptionsPerArea;
    }

    /** The chunk holding area {@code area}: 1 + area * (E + 1). */
    long areaLocation(long area) {
        return 1 + area * (exceptionsPerArea + 1);
    }

    /** Whether {@code chunk} holds metadata (the header or an area). */
    boolean isMetadataChunk(long chunk) {
        return chunk == 0 || chunk % (exceptionsPerArea + 1) == 1;
    }

    /** The next allocatable chunk at or after {@code chunk}, skipping an area chunk. */
    long skipMetadata(long chunk) {
        return chunk % (exceptionsPerArea + 1) == 1 ? chunk + 1 : chunk;
    }

    long chunkOffsetBytes(long chunk) {
        return chunk * chunkSize.bytes();
    }
}
