package dmsnap.store.persistent;

import java.lang.foreign.MemorySegment;

/**
 * The 16 bytes at the start of a persistent COW ({@code struct disk_header}).
 *
 * @param magic      {@link PersistentLayout#SNAP_MAGIC}, or 0 for a new COW
 * @param valid      1 valid, 0 invalidated
 * @param version    {@link PersistentLayout#SNAPSHOT_DISK_VERSION}
 * @param chunkSectors chunk size in sectors
 */
record DiskHeader(int magic, int valid, int version, int chunkSectors) {
    static final long MAGIC_OFFSET = 0;
    static final long VALID_OFFSET = 4;
    static final long VERSION_OFFSET = 8;
    static final long CHUNK_SIZE_OFFSET = 12;

    static DiskHeader read(MemorySegment chunk0) {
        return new DiskHeader(
                chunk0.get(PersistentLayout.LE32, MAGIC_OFFSET),
                chunk0.get(PersistentLayout.LE32, VALID_OFFSET),
                chunk0.get(PersistentLayout.LE32, VERSION_OFFSET),
                chunk0.get(PersistentLayout.LE32, CHUNK_SIZE_OFFSET));
    }

    /** Writes the header and zeroes the rest of {@code chunk0}, as the kernel writes a full chunk. */
    void writeChunk(MemorySegment chunk0) {
        chunk0.fill((byte) 0);
        chunk0.set(PersistentLayout.LE32, MAGIC_OFFSET, magic);
        chunk0.set(PersistentLayout.LE32, VALID_OFFSET, valid);
        chunk0.set(PersistentLayout.LE32, VERSION_OFFSET, version);
        chunk0.set(PersistentLayout.LE32, CHUNK_SIZE_OFFSET, chunkSectors);
    }

    boolean isNew() {
        return magic == 0;
    }

    static DiskHeader fresh(long chunkSectors, boolean valid) {
        return new DiskHeader(
                PersistentLayout.SNAP_MAGIC, valid ? 1 : 0, PersistentLayout.SNAPSHOT_DISK_VERSION, (int) chunkSectors);
    }
}
