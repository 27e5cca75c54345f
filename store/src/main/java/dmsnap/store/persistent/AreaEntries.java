package dmsnap.store.persistent;

import java.lang.foreign.MemorySegment;

/**
 * The entries of one exception area ({@code struct disk_exception} array of {@code
 * dm-snap-persistent.c}): a view over the segment holding the area's chunk, entry {@code i} at
 * byte {@code i * 16}, {@code le64 old_chunk} then {@code le64 new_chunk}. The only code that
 * reads or writes an area's bytes; an entry whose new chunk is 0 ends the exception list.
 */
final class AreaEntries {
    private final MemorySegment area;

    AreaEntries(MemorySegment area) {
        this.area = area;
    }

    /** Entries the area holds: its bytes / 16 (E, for a whole chunk). */
    long count() {
        return area.byteSize() / PersistentLayout.EXCEPTION_BYTES;
    }

    /** Where entry {@code index} starts within its area. */
    static long offsetBytes(long index) {
        return index * PersistentLayout.EXCEPTION_BYTES;
    }

    /** Bytes taken by {@code entries} entries. */
    static long lengthBytes(long entries) {
        return entries * PersistentLayout.EXCEPTION_BYTES;
    }

    long oldChunk(long index) {
        return area.get(PersistentLayout.LE64, offsetBytes(index));
    }

    long newChunk(long index) {
        return area.get(PersistentLayout.LE64, offsetBytes(index) + 8);
    }

    void set(long index, long oldChunk, long newChunk) {
        area.set(PersistentLayout.LE64, offsetBytes(index), oldChunk);
        area.set(PersistentLayout.LE64, offsetBytes(index) + 8, newChunk);
    }

    /** Zeroes {@code entries} entries from {@code from} (both fields), as the kernel clears merged ones. */
    void clear(long from, long entries) {
        slice(from, entries).fill((byte) 0);
    }

    /** The bytes of {@code entries} entries from {@code from}. */
    MemorySegment slice(long from, long entries) {
        return area.asSlice(offsetBytes(from), lengthBytes(entries));
    }

    /** The first entry at or after {@code from} with a non-zero field, or -1 when the rest is zero. */
    long firstNonZero(long from) {
        long count = count();
        for (long i = from; i < count; i++) {
            if (oldChunk(i) != 0 || newChunk(i) != 0) {
                return i;
            }
        }
        return -1;
    }
}
