package dmsnap.store.persistent;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The 16 bytes at the start of a persistent COW ({@code struct disk_header}).
 *
 * @param magic      {@link PersistentLayout#SNAP_MAGIC}, or 0 for a new COW
 * @param valid      1 valid, 0 invalidated
 * @param version    {@link PersistentLayout#SNAPSHOT_DISK_VERSION}
 * @param chunkSectors chunk size in sectors
 */
record DiskHeader(int magic, int valid, int version, int chunkSectors) {
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    static DiskHeader read(MemorySegment chunk0) {
        return new DiskHeader(chunk0.get(LE32, 0), chunk0.get(LE32, 4), chunk0.get(LE32, 8), chunk0.get(LE32, 12));
    }

    /** Writes the header and zeroes the rest of {@code chunk0}, as the kernel writes a full chunk. */
    void writeChunk(MemorySegment chunk0) {
        chunk0.fill((byte) 0);
        chunk0.set(LE32, 0, magic);
        chunk0.set(LE32, 4, valid);
        chunk0.set(LE32, 8, version);
        chunk0.set(LE32, 12, chunkSectors);
    }

    boolean isNew() {
        return magic == 0;
    }

    static DiskHeader fresh(long chunkSectors, boolean valid) {
        return new DiskHeader(PersistentLayout.SNAP_MAGIC, valid ? 1 : 0, PersistentLayout.SNAPSHOT_DISK_VERSION,
                (int) chunkSectors);
    }
}
