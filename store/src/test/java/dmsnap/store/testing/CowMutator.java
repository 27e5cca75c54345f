package dmsnap.store.testing;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.persistent.PersistentExceptionStore;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

/**
 * Hostile persistent COW images for the fuzzers of the store and of the {@code cow} tools.
 *
 * <p>Seeds: every COW image the kernel left in the fixtures ({@code kernel-cow/<scenario>/final/cow*.img.gz},
 * also the transient one, which has no header at all), each also cut down after its last data chunk,
 * a zeroed (new) COW, and images the store itself writes with chunk sizes 1 to 128 sectors: a few
 * exceptions, or (for chunk sizes up to 8) enough to fill two or three areas, some invalidated.
 * Every old chunk of the written images lies inside an origin of {@link #ORIGIN_SECTORS}.
 *
 * <p>Mutations aim at what a loader trusts: bit flips, interesting values in exception fields
 * (0, all ones, the sign bit, max long, chunks past the end, a new chunk or an old chunk used
 * twice, a new chunk pointing into the header or an area), header field edits (magic, valid,
 * version, chunk size), truncation anywhere (also inside the header or an area), extension,
 * areas swapped, the terminator removed, stale entries after it, random bytes. Each mutant
 * carries what was done, for the failure message.
 */
public final class CowMutator {
    /** The origin the store-written seeds' old chunks fit in: 8 MiB, as the kernel fixtures'. */
    public static final long ORIGIN_SECTORS = 16384;

    static final int SNAP_MAGIC = 0x70416e53;
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final String[] KERNEL_SCENARIOS = {"basic", "handover", "overflow", "transient"};

    private CowMutator() {}

    /** A seed image. */
    public record CowImage(String name, byte[] bytes) {}

    /** A mutated image and how it was made from its seed. */
    public record Mutant(CowImage seed, byte[] bytes, List<String> mutations) {
        public String describe() {
            return seed.name() + " (" + seed.bytes().length + " bytes) with " + String.join(", ", mutations) + ": "
                    + bytes.length + " bytes";
        }
    }

    // ---- seeds -----------------------------------------------------------------------------------

    /** Every seed; the store-written ones derived from {@code random}. */
    public static List<CowImage> seeds(Random random) throws IOException {
        List<CowImage> seeds = new ArrayList<>();
        for (String scenario : KERNEL_SCENARIOS) {
            for (String image : KernelFixtures.sha256sums(scenario).keySet()) {
                if (!image.startsWith("cow")) {
                    continue;
                }
                byte[] bytes = KernelFixtures.image(scenario, image);
                seeds.add(new CowImage("kernel " + scenario + "/" + image, bytes));
                byte[] cut = cutAfterData(bytes);
                if (cut.length < bytes.length) {
                    seeds.add(
                            new CowImage("kernel " + scenario + "/" + image + " cut to " + cut.length + " bytes", cut));
                }
            }
        }
        seeds.add(new CowImage("zeroed (new) COW", new byte[64 << 10]));
        for (int shift = 0; shift <= 7; shift++) {
            long chunk = 1L << shift;
            seeds.add(written(chunk, false, false, random));
            seeds.add(written(chunk, chunk <= 8, false, random));
            if (shift % 3 == 0) {
                seeds.add(written(chunk, false, true, random));
            }
        }
        return seeds;
    }

    /** A COW the store wrote: chunk size {@code chunk}, across areas when {@code areas}, invalidated when asked. */
    static CowImage written(long chunk, boolean areas, boolean invalidated, Random random) throws IOException {
        long epa = chunk * 32;
        int count = areas ? (int) (epa * 2 + 1 + random.nextInt((int) epa)) : 1 + random.nextInt(40);
        long originChunks = ORIGIN_SECTORS / chunk;
        count = (int) Math.min(count, originChunks);
        long areasUsed = count / epa + 1;
        // Sometimes the COW ends right after the data (the next area would not fit).
        long chunks = 2 + count + areasUsed + random.nextInt(3);
        Set<Long> olds = new LinkedHashSet<>();
        long run = random.nextInt((int) originChunks);
        while (olds.size() < count) {
            // Runs of consecutive chunks (as sequential writes make) and random ones.
            run = random.nextInt(4) == 0 ? random.nextInt((int) originChunks) : (run + 1) % originChunks;
            olds.add(run);
        }
        try (MemoryDevice cow = new MemoryDevice("seed", chunks * chunk * 512)) {
            PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(chunk), false, 512);
            if (store.load((o, n) -> {}) != LoadResult.VALID) {
                throw new IllegalStateException("a zeroed COW loads as new");
            }
            byte[] data = new byte[(int) (chunk * 512)];
            for (long old : olds) {
                PendingRemap remap = store.prepare(old);
                Arrays.fill(data, (byte) old);
                cow.write(remap.newChunk() * chunk * 512, MemorySegment.ofArray(data));
                boolean[] ok = {false};
                store.commit(remap, true, (r, success) -> ok[0] = success);
                if (!ok[0]) {
                    throw new IllegalStateException("commit of a seed exception failed: " + remap);
                }
            }
            if (invalidated) {
                store.invalidate();
            }
            store.close();
            return new CowImage(
                    "written chunk " + chunk + ", " + count + " exceptions in " + areasUsed
                            + (areasUsed == 1 ? " area" : " areas") + (invalidated ? ", invalidated" : ""),
                    cow.contents().toArray(ValueLayout.JAVA_BYTE));
        }
    }

    /** The image up to its last data chunk (and the area after it), when it has a usable header. */
    private static byte[] cutAfterData(byte[] image) {
        Geometry g = Geometry.of(image);
        if (g == null) {
            return image;
        }
        long lastArea = g.terminator != null ? g.terminator.area : g.entries.isEmpty() ? 0 : g.entries.getLast().area;
        long last = g.areaLocation(lastArea);
        for (Entry e : g.entries) {
            last = Math.max(last, e.newChunk(image));
        }
        long end = Math.min(image.length, (last + 1) * g.chunkBytes);
        return Arrays.copyOf(image, (int) end);
    }

    // ---- layout, as read from a seed -------------------------------------------------------------

    /** An exception slot: area, index and its byte offset. */
    record Entry(long area, int index, long offset) {
        long oldChunk(byte[] b) {
            return get(b, offset);
        }

        long newChunk(byte[] b) {
            return get(b, offset + 8);
        }
    }

    /** The layout a seed's header describes, and its exception slots up to and with the terminator. */
    record Geometry(long chunkBytes, long epa, List<Entry> entries, Entry terminator) {
        static Geometry of(byte[] b) {
            if (b.length < 16
                    || ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(0) != SNAP_MAGIC) {
                return null;
            }
            long sectors = Integer.toUnsignedLong(
                    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(12));
            if (sectors == 0 || Long.bitCount(sectors) != 1 || sectors > 1024) {
                return null;
            }
            long chunkBytes = sectors * 512;
            long epa = sectors * 32;
            List<Entry> entries = new ArrayList<>();
            Entry terminator = null;
            for (long k = 0; terminator == null; k++) {
                long at = (1 + k * (epa + 1)) * chunkBytes;
                if (at + chunkBytes > b.length) {
                    break;
                }
                for (int i = 0; i < epa; i++) {
                    Entry e = new Entry(k, i, at + i * 16L);
                    if (e.newChunk(b) == 0) {
                        terminator = e;
                        break;
                    }
                    entries.add(e);
                }
            }
            return new Geometry(chunkBytes, epa, entries, terminator);
        }

        long areaLocation(long area) {
            return 1 + area * (epa + 1);
        }
    }

    private static long get(byte[] b, long offset) {
        return offset + 8 <= b.length ? MemorySegment.ofArray(b).get(LE64, offset) : 0;
    }

    private static void put(byte[] b, long offset, long value) {
        if (offset >= 0 && offset + 8 <= b.length) {
            MemorySegment.ofArray(b).set(LE64, offset, value);
        }
    }

    private static void put32(byte[] b, int offset, int value) {
        if (offset + 4 <= b.length) {
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(offset, value);
        }
    }

    // ---- mutations -------------------------------------------------------------------------------

    private static final int[] HEADER_FIELDS = {0, 4, 8, 12};
    private static final String[] HEADER_NAMES = {"magic", "valid", "version", "chunk_size"};

    /** One to three mutations of {@code seed}. */
    public static Mutant mutate(CowImage seed, Random r) {
        byte[] b = seed.bytes().clone();
        // The layout is the seed's: mutations aim at where a loader would look.
        Geometry g = Geometry.of(seed.bytes());
        List<String> done = new ArrayList<>();
        int count = 1 + (r.nextInt(4) == 0 ? 1 + r.nextInt(2) : 0);
        for (int m = 0; m < count; m++) {
            b = mutateOnce(b, g, r, done);
        }
        return new Mutant(seed, b, done);
    }

    private static byte[] mutateOnce(byte[] b, Geometry g, Random r, List<String> done) {
        int kind = r.nextInt(13);
        if (b.length == 0) {
            kind = 4;
        }
        switch (kind) {
            case 0 -> { // a bit flip, mostly where the metadata is
                long at = metadataOffset(b, g, r);
                int bit = r.nextInt(8);
                b[(int) at] ^= (byte) (1 << bit);
                done.add("bit " + bit + " of byte " + at + " flipped");
            }
            case 1, 2 -> { // an interesting value in an exception field
                Entry e = slot(g, r);
                if (e == null) {
                    return mutateOnce(b, null, r, done);
                }
                boolean newField = r.nextBoolean();
                long value = interestingChunk(b, g, e, newField, r);
                put(b, e.offset + (newField ? 8 : 0), value);
                done.add((newField ? "new_chunk" : "old_chunk") + " of area " + e.area + " entry " + e.index + " (byte "
                        + e.offset + ") = " + Long.toUnsignedString(value));
            }
            case 3 -> { // a header field
                int field = r.nextInt(4);
                int value = interestingHeaderValue(field, b, r);
                put32(b, HEADER_FIELDS[field], value);
                done.add("header " + HEADER_NAMES[field] + " = " + Integer.toUnsignedString(value));
            }
            case 4 -> { // truncation: anywhere, inside the header, at a chunk boundary or inside an area
                long at = switch (r.nextInt(4)) {
                    case 0 -> r.nextInt(Math.min(b.length, 16) + 1);
                    case 1 ->
                        g == null
                                ? r.nextInt(b.length + 1)
                                : Math.min(
                                        b.length,
                                        g.chunkBytes * r.nextInt((int) Math.max(1, b.length / g.chunkBytes) + 1));
                    case 2 ->
                        g == null
                                ? r.nextInt(b.length + 1)
                                : Math.min(
                                        b.length,
                                        g.areaLocation(r.nextInt(3)) * g.chunkBytes + r.nextInt((int) g.chunkBytes));
                    default -> r.nextInt(b.length + 1);
                };
                b = Arrays.copyOf(b, (int) at);
                done.add("truncated to " + at + " bytes");
            }
            case 5 -> { // extension
                int more = r.nextBoolean()
                        ? 1 + r.nextInt(4096)
                        : (int) ((g == null ? 4096 : g.chunkBytes) * (1 + r.nextInt(300)));
                int old = b.length;
                b = Arrays.copyOf(b, Math.min(old + more, 6 << 20));
                if (r.nextBoolean()) {
                    for (int i = old; i < b.length; i++) {
                        b[i] = (byte) r.nextInt(256);
                    }
                }
                done.add("extended to " + b.length + " bytes");
            }
            case 6 -> { // two chunks swapped: areas, or an area and a data chunk
                if (g == null) {
                    return mutateOnce(b, null, r, done);
                }
                long chunks = b.length / g.chunkBytes;
                long a = g.areaLocation(r.nextInt(3));
                long c = r.nextBoolean() ? g.areaLocation(r.nextInt(3)) : 2 + r.nextInt((int) Math.max(1, chunks));
                if (a >= chunks || c >= chunks || a == c) {
                    return mutateOnce(b, g, r, done);
                }
                byte[] tmp = Arrays.copyOfRange(b, (int) (a * g.chunkBytes), (int) ((a + 1) * g.chunkBytes));
                System.arraycopy(b, (int) (c * g.chunkBytes), b, (int) (a * g.chunkBytes), (int) g.chunkBytes);
                System.arraycopy(tmp, 0, b, (int) (c * g.chunkBytes), (int) g.chunkBytes);
                done.add("chunks " + a + " and " + c + " swapped");
            }
            case 7 -> { // the terminator removed: the list runs on through the area, maybe into the next one
                if (g == null || g.terminator == null) {
                    return mutateOnce(b, g, r, done);
                }
                Entry t = g.terminator;
                long next = t.index == 0 ? 2 : get(b, t.offset - 8) + 1;
                int upTo = r.nextBoolean() ? (int) g.epa : t.index + 1 + r.nextInt((int) g.epa - t.index);
                for (int i = t.index; i < upTo; i++) {
                    long at = t.offset + (i - t.index) * 16L;
                    put(b, at, r.nextInt(1 << 14));
                    put(b, at + 8, next++);
                }
                done.add("terminator at area " + t.area + " entry " + t.index + " removed, entries to " + upTo);
            }
            case 8 -> { // a stale entry after the terminator
                if (g == null || g.terminator == null || g.terminator.index + 1 >= g.epa) {
                    return mutateOnce(b, g, r, done);
                }
                Entry t = g.terminator;
                long at = t.offset + 16L * (1 + r.nextInt((int) g.epa - t.index - 1));
                put(b, at, r.nextInt(1 << 14));
                put(b, at + 8, 2 + r.nextInt(1 << 10));
                done.add("stale entry at byte " + at);
            }
            case 9 -> { // an entry copied over another: the same old and new chunk twice
                if (g == null || g.entries.size() < 2) {
                    return mutateOnce(b, g, r, done);
                }
                Entry from = g.entries.get(r.nextInt(g.entries.size()));
                Entry to = r.nextBoolean() && g.terminator != null
                        ? g.terminator
                        : g.entries.get(r.nextInt(g.entries.size()));
                put(b, to.offset, from.oldChunk(b));
                put(b, to.offset + 8, from.newChunk(b));
                done.add("area " + from.area + " entry " + from.index + " copied to area " + to.area + " entry "
                        + to.index);
            }
            case 10 -> { // random bytes
                long at = metadataOffset(b, g, r);
                int len = (int) Math.min(b.length - at, 1 + r.nextInt(64));
                for (int i = 0; i < len; i++) {
                    b[(int) at + i] = (byte) r.nextInt(256);
                }
                done.add(len + " random bytes at " + at);
            }
            case 11 -> { // a range zeroed: the header, an area or a few entries
                long at = r.nextBoolean() || g == null
                        ? metadataOffset(b, g, r)
                        : g.areaLocation(r.nextInt(3)) * g.chunkBytes;
                long len =
                        Math.min(b.length - at, g != null && r.nextBoolean() ? g.chunkBytes : 16L * (1 + r.nextInt(8)));
                if (at >= b.length) {
                    return mutateOnce(b, g, r, done);
                }
                Arrays.fill(b, (int) at, (int) (at + len), (byte) 0);
                done.add(len + " bytes zeroed at " + at);
            }
            default -> { // the header chunk size swapped for a plausible wrong one
                if (b.length < 16) {
                    return mutateOnce(b, g, r, done);
                }
                int sectors = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(12);
                int value = r.nextBoolean() ? sectors << 1 : sectors >>> 1;
                put32(b, 12, value);
                done.add("header chunk_size " + Integer.toUnsignedString(sectors) + " -> "
                        + Integer.toUnsignedString(value));
            }
        }
        return b;
    }

    /** An offset inside {@code b}: half the time in the header or an exception slot. */
    private static long metadataOffset(byte[] b, Geometry g, Random r) {
        long at = switch (r.nextInt(4)) {
            case 0 -> r.nextInt(16);
            case 1 -> {
                Entry e = slot(g, r);
                yield e == null ? r.nextInt(b.length) : e.offset + r.nextInt(16);
            }
            default -> r.nextInt(b.length);
        };
        return Math.min(at, b.length - 1);
    }

    /** A slot to change: a used entry, the terminator, or any slot of areas 0 to 2. */
    private static Entry slot(Geometry g, Random r) {
        if (g == null) {
            return null;
        }
        int pick = r.nextInt(4);
        if (pick < 2 && !g.entries.isEmpty()) {
            return g.entries.get(r.nextInt(g.entries.size()));
        }
        if (pick == 2 && g.terminator != null) {
            return g.terminator;
        }
        long area = r.nextInt(3);
        int index = r.nextInt((int) g.epa);
        return new Entry(area, index, (g.areaLocation(area) * g.chunkBytes) + index * 16L);
    }

    private static long interestingChunk(byte[] b, Geometry g, Entry e, boolean newField, Random r) {
        long chunks = b.length / g.chunkBytes;
        return switch (r.nextInt(15)) {
            case 0 -> 0;
            case 1 -> 1;
            case 2 -> -1L;
            case 3 -> Long.MIN_VALUE;
            case 4 -> Long.MAX_VALUE;
            case 5 -> chunks;
            case 6 -> chunks - 1;
            case 7 -> chunks + 1 + r.nextInt(1000);
            case 8 -> 1L << (32 + r.nextInt(31)); // beyond what an exception table holds, or far past the end
            case 9 -> g.areaLocation(r.nextInt(3)); // an area: metadata
            case 10 -> 0xffffffffL;
            case 11 -> { // the same chunk as another entry (a new chunk used twice, an old chunk twice)
                if (g.entries.isEmpty()) {
                    yield 2;
                }
                Entry other = g.entries.get(r.nextInt(g.entries.size()));
                yield newField ? other.newChunk(b) : other.oldChunk(b);
            }
            case 12 -> newField ? e.newChunk(b) + 1 : e.oldChunk(b) + 1;
            case 13 -> newField ? e.newChunk(b) - 1 : e.oldChunk(b) - 1;
            default -> r.nextLong();
        };
    }

    private static int interestingHeaderValue(int field, byte[] b, Random r) {
        return switch (r.nextInt(10)) {
            case 0 -> 0;
            case 1 -> 1;
            case 2 -> -1;
            case 3 -> Integer.MIN_VALUE;
            case 4 -> field == 0 ? SNAP_MAGIC ^ (1 << r.nextInt(32)) : 2;
            case 5 -> field == 3 ? 1 << r.nextInt(32) : r.nextInt();
            case 6 -> field == 3 ? 1 << (20 + r.nextInt(4)) : 1; // 512 MiB .. 4 GiB chunks: far larger than the image
            case 7 -> field == 3 ? 3 + 2 * r.nextInt(100) : 0x7fffffff; // not a power of two
            case 8 -> field == 0 ? SNAP_MAGIC : (field == 3 ? 8 : 1);
            default -> r.nextInt();
        };
    }
}
