package dmsnap.store.persistent;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionTable;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a persistent COW offline, without trusting it: the header, every area up to the
 * terminator, every entry in on-disk order, and every problem the loader would trip over (or
 * that would make the snapshot read wrong data), each with its area, entry and byte offset.
 * Writes nothing. Backs {@code dmsnap cow dump} and {@code dmsnap cow check}.
 */
public final class CowInspector {
    private CowInspector() {}

    /** An area read into a buffer that goes back to {@code free} when the walk is done with it. */
    private record BufferArea(MemorySegment buffer, ArrayDeque<MemorySegment> free) implements AreaWalker.Area {
        @Override
        public AreaEntries entries() {
            return new AreaEntries(buffer);
        }

        @Override
        public void close() {
            free.push(buffer);
        }
    }

    /** One on-disk exception. */
    public record Entry(long area, int index, long byteOffset, long oldChunk, long newChunk) {}

    /** One area that was read: its chunk and its entries before the terminator. */
    public record Area(long index, long chunk, int entries) {}

    /**
     * A problem, located: {@code area} and {@code entry} are -1 where they do not apply (the
     * header). {@code message} is the whole sentence, worded as the table load words the same
     * damage ({@link CowDamage}).
     */
    public record Problem(CowDamage kind, long area, int entry, long byteOffset, String message) {
        @Override
        public String toString() {
            return message;
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
    public record Report(
            DiskHeaderView header,
            ChunkSize chunkSize,
            long exceptionsPerArea,
            List<Area> areas,
            List<Entry> exceptions,
            List<Problem> problems,
            List<String> notes,
            long sizeBytes) {

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
            return nextFree * chunkSize.sectors() + "/" + (sizeBytes >>> 9) + " "
                    + (currentArea + 2) * chunkSize.sectors();
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
            return String.format(
                    "magic=0x%08x valid=%d version=%d chunk_size=%d",
                    magic, valid, version, Integer.toUnsignedLong(chunkSectors));
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
            problems.add(new Problem(CowDamage.HEADER, -1, -1, 0, CowDamage.tooSmallForHeader(cow.name(), size)));
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
            problems.add(new Problem(
                    CowDamage.HEADER,
                    -1,
                    -1,
                    DiskHeader.MAGIC_OFFSET,
                    "byte 0: magic " + String.format("0x%08x", header.magic())
                            + " is not SnAp (0x70416e53): Invalid or corrupt snapshot"));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        if (header.version() != PersistentLayout.SNAPSHOT_DISK_VERSION) {
            problems.add(new Problem(
                    CowDamage.HEADER,
                    -1,
                    -1,
                    DiskHeader.VERSION_OFFSET,
                    "byte 8: unable to handle snapshot disk version " + header.version()));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        long sectors = Integer.toUnsignedLong(header.chunkSectors());
        String reason = ChunkSize.invalidReason(sectors, block, originBlockBytes);
        if (reason != null) {
            problems.add(new Problem(
                    CowDamage.HEADER,
                    -1,
                    -1,
                    DiskHeader.CHUNK_SIZE_OFFSET,
                    "byte 12: invalid on-disk chunk size " + sectors + ": " + reason + "."));
            return new Report(header, null, 0, areas, exceptions, problems, notes, size);
        }
        ChunkSize chunk = new ChunkSize(sectors);
        PersistentLayout layout = new PersistentLayout(chunk);
        long epa = layout.exceptionsPerArea();
        long cowChunks = size / layout.chunkBytes();
        if (cowChunks < 1) {
            problems.add(new Problem(
                    CowDamage.HEADER, -1, -1, 0, CowDamage.tooSmallFor(cow.name(), size, "the header chunk", sectors)));
            return new Report(header, chunk, epa, areas, exceptions, problems, notes, size);
        }
        if (header.valid() == 0) {
            notes.add("the snapshot was invalidated (valid=0): the kernel loads it as Invalid and reads no exceptions");
        }
        long originChunks = originSectors < 0 ? -1 : (originSectors + sectors - 1) / sectors;
        try (Arena arena = Arena.ofConfined();
                ExceptionTable byOld = new ExceptionTable()) {
            // At most two areas are open at once (the one walked, and one re-read to find a reused new chunk).
            ArrayDeque<MemorySegment> buffers = new ArrayDeque<>();
            AreaWalker<BufferArea> walker = new AreaWalker<>(layout, cowChunks, (k, offsetBytes) -> {
                MemorySegment buffer = buffers.isEmpty()
                        ? arena.allocate(layout.chunkBytes(), Math.max(4096, cow.bufferAlignmentBytes()))
                        : buffers.pop();
                cow.read(offsetBytes, buffer);
                return new BufferArea(buffer, buffers);
            });
            walker.walk(new AreaWalker.Visitor() {
                @Override
                public void entry(long k, int index, long byteOffset, long oldChunk, long newChunk) {
                    exceptions.add(new Entry(k, index, byteOffset, oldChunk, newChunk));
                    // What the table load's exception table refuses, which the walk leaves to it.
                    if (oldChunk < 0) {
                        return; // the walk reported it
                    }
                    if (!ExceptionTable.holds(oldChunk, newChunk)) {
                        if (newChunk >= 0 && newChunk < cowChunks) { // else reported as past the end
                            problems.add(CowDamage.beyondExceptionTable(k, index, byteOffset, oldChunk, newChunk));
                        }
                        return;
                    }
                    if (originChunks >= 0 && oldChunk >= originChunks) {
                        problems.add(CowDamage.oldChunkPastOrigin(k, index, byteOffset, oldChunk, originChunks));
                    }
                    if (!byOld.insert(oldChunk, newChunk)) {
                        problems.add(CowDamage.oldChunkTwice(
                                k, index, byteOffset, oldChunk, newChunk, byOld.lookup(oldChunk)));
                    }
                }

                @Override
                public void damage(Problem problem) {
                    problems.add(problem);
                }

                @Override
                public void areaRead(long k, long chunk, int entries) {
                    areas.add(new Area(k, chunk, entries));
                }
            });
        }
        return new Report(header, chunk, epa, areas, exceptions, problems, notes, size);
    }
}
