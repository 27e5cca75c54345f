package dmsnap.store.persistent;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionTable;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a persistent COW offline, without trusting it: the header, every area up to the
 * terminator, every entry in on-disk order, and every problem the loader would trip over (or
 * that would make the snapshot read wrong data), each with its area, entry and byte offset.
 * Writes nothing. Backs {@code dmsnap cow dump} and {@code dmsnap cow check}.
 */
public final class CowInspector {
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private CowInspector() {
    }

    /** One on-disk exception. */
    public record Entry(long area, int index, long byteOffset, long oldChunk, long newChunk) {
    }

    /** One area that was read: its chunk and its entries before the terminator. */
    public record Area(long index, long chunk, int entries) {
    }

    /** A problem, located. */
    public record Problem(long area, int entry, long byteOffset, String message) {
        @Override
        public String toString() {
            if (area < 0) {
                return message;
            }
            return "area " + area + (entry >= 0 ? " entry " + entry : "") + " (byte " + byteOffset + "): " + message;
        }
    }

    /**
     * What the COW holds.
     *
     * @param header      the 16 header bytes as read (null when the device is too small for them)
     * @param chunkSize   the header's chunk size when usable, else null
     * @param exceptionsPerArea entries per area (0 when the chunk size is unusable)
     * @param areas       the areas read, in order
     * @param exceptions  every entry before the terminator, in on-disk order
     * @param problems    what is wrong; empty for a clean COW
     * @param notes       facts worth saying that are not damage (a new or invalidated COW)
     * @param sizeBytes   the COW's size
     */
    public record Report(DiskHeaderView header, ChunkSize chunkSize, long exceptionsPerArea, List<Area> areas,
                         List<Entry> exceptions, List<Problem> problems, List<String> notes, long sizeBytes) {

        /** {@code dmsetup status} numbers the kernel would show right after loading this COW. */
        public String derivedUsage() {
            if (chunkSize == null || areas.isEmpty()) {
                return null;
            }
            PersistentLayout layout = new PersistentLayout(chunkSize);
            long nextFree = PersistentLayout.FIRST_DATA_CHUNK;
            for (Entry e : exceptions) {
                nextFree = Math.max(nextFree, e.newChunk() + 1);
            }
            nextFree = layout.skipMetadata(nextFree);
            long currentArea = areas.getLast().index();
            return nextFree * chunkSize.sectors() + "/" + (sizeBytes >>> 9) + " " + (currentArea + 2) * chunkSize.sectors();
        }

        public boolean clean() {
            return problems.isEmpty();
        }

        /** Origin chunk to COW chunk, for reading the snapshot view (last entry wins on duplicates). */
        public Map<Long, Long> remaps() {
            Map<Long, Long> map = new HashMap<>();
            for (Entry e : exceptions) {
                map.put(e.oldChunk(), e.newChunk());
            }
            return map;
        }
    }

    /** The header fields as stored. */
    public record DiskHeaderView(int magic, int valid, int version, int chunkSectors) {
        public boolean isSnapMagic() {
            return magic == PersistentLayout.SNAP_MAGIC;
        }

        @Override
        public String toString() {
            return String.format("magic=0x%08x valid=%d version=%d chunk_size=%d", magic, valid, version,
                    Integer.toUnsignedLong(chunkSectors));
        }
    }

    /**
     * Inspects {@code cow}; with {@code originSectors} >= 0 also checks that every old chunk lies
     * inside the origin.
     *
     * @throws IOException when the COW cannot be read at all
     */
    public static Report inspect(Device cow, int originBlockBytes, long originSectors) throws IOException {
        List<Problem> problems = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        List<Area> areas = new ArrayList<>();
        List<Entry> exceptions = new ArrayList<>();
        long size = cow.sizeBytes();
        int block = cow.logicalBlockBytes();
        if (size < block) {
            problems.add(new Problem(-1, -1, 0, "the COW (" + size + " bytes) is too small to hold a header"));
            return new Report(null, null, 0, areas, exceptions, problems, notes, size);
        }
        DiskHeaderView header;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment first = arena.allocate(block, Math.max(4096, cow.bufferAlignmentBytes()));
            cow.read(0, first);
            DiskHeader h = DiskHeader.read(first);
            header = new DiskHeaderView(h.magic(), h.valid(), h.version(), h.chunkSectors());
        }
        if (header.magic() == 0) {
            notes.add("new COW: the magic is 0, so the next activation formats it (nothing else is read)");
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        if (!header.isSnapMagic()) {
            problems.add(new Problem(-1, -1, 0, "byte 0: magic " + String.format("0x%08x", header.magic())
                    + " is not SnAp (0x70416e53): Invalid or corrupt snapshot"));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        if (header.version() != PersistentLayout.SNAPSHOT_DISK_VERSION) {
            problems.add(new Problem(-1, -1, 8, "byte 8: unable to handle snapshot disk version " + header.version()));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        long sectors = Integer.toUnsignedLong(header.chunkSectors());
        String reason = ChunkSize.invalidReason(sectors, block, originBlockBytes);
        if (reason != null) {
            problems.add(new Problem(-1, -1, 12, "byte 12: invalid on-disk chunk size " + sectors + ": " + reason + "."));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        ChunkSize chunk = new ChunkSize(sectors);
        PersistentLayout layout = new PersistentLayout(chunk);
        long epa = layout.exceptionsPerArea();
        long cowChunks = size / layout.chunkBytes();
        if (cowChunks < 2) {
            problems.add(new Problem(-1, -1, 0, "the COW (" + size + " bytes) is too small for the header and area 0 with chunk size " + sectors));
            return new Report(header, chunk, epa, areas, exceptions, problems, notes, size);
        }
        if (header.valid() == 0) {
            notes.add("the snapshot was invalidated (valid=0): the kernel loads it as Invalid and reads no exceptions");
        }
        Map<Long, Entry> byOld = new HashMap<>();
        Set<Long> usedNew = new HashSet<>();
        long originChunks = originSectors < 0 ? -1 : (originSectors + sectors - 1) / sectors;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(layout.chunkBytes(), Math.max(4096, cow.bufferAlignmentBytes()));
            for (long k = 0; ; k++) {
                long location = layout.areaLocation(k);
                long areaOffset = layout.chunkOffsetBytes(location);
                if (location >= cowChunks) {
                    problems.add(new Problem(k, -1, areaOffset, "area " + k + " at chunk " + location
                            + " lies beyond the end of the COW (" + cowChunks + " chunks): the exception list has no terminator"));
                    break;
                }
                cow.read(areaOffset, buffer);
                int count = 0;
                boolean terminated = false;
                for (int i = 0; i < epa; i++) {
                    long at = areaOffset + (long) i * PersistentLayout.EXCEPTION_BYTES;
                    long oldChunk = buffer.get(LE64, (long) i * PersistentLayout.EXCEPTION_BYTES);
                    long newChunk = buffer.get(LE64, (long) i * PersistentLayout.EXCEPTION_BYTES + 8);
                    if (newChunk == 0) {
                        terminated = true;
                        for (int j = i + 1; j < epa; j++) {
                            long o = buffer.get(LE64, (long) j * PersistentLayout.EXCEPTION_BYTES);
                            long n = buffer.get(LE64, (long) j * PersistentLayout.EXCEPTION_BYTES + 8);
                            if (o != 0 || n != 0) {
                                problems.add(new Problem(k, j, areaOffset + (long) j * PersistentLayout.EXCEPTION_BYTES,
                                        "non-zero entry after the terminator at entry " + i
                                                + " (ignored by the kernel, but a torn or stale write)"));
                                break;
                            }
                        }
                        break;
                    }
                    Entry e = new Entry(k, i, at, oldChunk, newChunk);
                    exceptions.add(e);
                    count++;
                    if (Long.compareUnsigned(newChunk, cowChunks) >= 0) {
                        problems.add(new Problem(k, i, at, "new_chunk " + Long.toUnsignedString(newChunk)
                                + " is past the end of the COW (" + cowChunks + " chunks)"));
                    } else if (layout.isMetadataChunk(newChunk)) {
                        problems.add(new Problem(k, i, at, "new_chunk " + newChunk + " is a metadata chunk"));
                    } else if (!usedNew.add(newChunk)) {
                        problems.add(new Problem(k, i, at, "new_chunk " + newChunk + " is used by an earlier exception too"));
                    }
                    if (oldChunk < 0 || oldChunk > ExceptionTable.MAX_OLD_CHUNK) {
                        // The loader refuses it whatever the origin (ExceptionTable#loadingSink).
                        problems.add(new Problem(k, i, at, "old_chunk " + Long.toUnsignedString(oldChunk)
                                + " is out of range (the exception table holds origin chunks up to "
                                + ExceptionTable.MAX_OLD_CHUNK + ")"));
                    } else if (originChunks >= 0 && oldChunk >= originChunks) {
                        problems.add(new Problem(k, i, at, "old_chunk " + Long.toUnsignedString(oldChunk)
                                + " is past the end of the origin (" + originChunks + " chunks)"));
                    }
                    Entry earlier = byOld.putIfAbsent(oldChunk, e);
                    if (earlier != null) {
                        problems.add(new Problem(k, i, at, "old_chunk " + oldChunk + " already has an exception (area "
                                + earlier.area() + " entry " + earlier.index() + ")"));
                    }
                }
                areas.add(new Area(k, location, count));
                if (terminated) {
                    break;
                }
            }
        }
        return new Report(header, chunk, epa, areas, exceptions, problems, notes, size);
    }
}
