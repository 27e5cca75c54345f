package dmsnap.store.persistent;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import dmsnap.store.ChunkSize;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.MergeRun;
import dmsnap.store.PendingRemap;
import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.ExceptionStoreContract;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.KernelFixtures;
import dmsnap.store.testing.Patterns;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class PersistentExceptionStoreTest extends ExceptionStoreContract {
    private static final java.lang.foreign.ValueLayout.OfLong LE64 =
            JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final java.lang.foreign.ValueLayout.OfInt LE32 =
            JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Override
    protected ExceptionStore newStore(Device cow, long chunkSectors) {
        return new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512);
    }

    @Override
    protected long firstDataChunk() {
        return 2;
    }

    private static PersistentExceptionStore store(Device cow, long chunk) throws IOException {
        PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(chunk), false, 512);
        assertEquals(LoadResult.VALID, s.load((o, n) -> {}));
        return s;
    }

    private static long entryNew(MemoryDevice cow, long chunkBytes, long area, long index, long epa) {
        long location = 1 + area * (epa + 1);
        return cow.contents().get(LE64, location * chunkBytes + index * 16 + 8);
    }

    @Test
    void manyOutstandingRemapsShareOneRound() throws IOException {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 4 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            List<PendingRemap> prepared = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                prepared.add(s.prepare(i));
            }
            long flushesBefore = cow.flushes();
            AtomicInteger acked = new AtomicInteger();
            for (int i = 1; i < 64; i++) {
                s.commit(prepared.get(i), true, (r, ok) -> acked.incrementAndGet());
            }
            assertEquals(0, acked.get(), "nothing is acknowledged before the first remap commits");
            s.commit(prepared.getFirst(), true, (r, ok) -> acked.incrementAndGet());
            assertEquals(64, acked.get());
            assertEquals(2, cow.flushes() - flushesBefore, "64 remaps, one round: data flush + metadata flush");
        }
    }

    @Test
    void aFullAreaIsWrittenEvenWhileOthersAreOutstanding() throws IOException {
        // chunk 1 sector: 32 entries per area.
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10);
                PersistentExceptionStore s = store(cow, 1)) {
            List<PendingRemap> prepared = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                prepared.add(s.prepare(i));
            }
            AtomicInteger acked = new AtomicInteger();
            for (int i = 0; i < 39; i++) {
                s.commit(prepared.get(i), true, (r, ok) -> acked.incrementAndGet());
            }
            assertEquals(32, acked.get(), "the full area 0 was written; 7 wait for remap 39");
            assertEquals("43/512 3", s.usage().statusString(), "chunks 2..33, 35..42 (34 is area 1)");
            s.commit(prepared.get(39), true, (r, ok) -> acked.incrementAndGet());
            assertEquals(40, acked.get());
        }
    }

    @Test
    void aRunSkipsTheNextAreaAndReloadsAsItsEntriesOneByOne() throws IOException {
        // chunk 1 sector: 32 entries per area; a run of 40 steps over area 1 (chunk 34).
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10)) {
            List<PendingRemap> run;
            try (PersistentExceptionStore s = store(cow, 1)) {
                run = s.prepare(500, 40);
                assertEquals(40, run.size());
                assertEquals(33, run.get(31).newChunk());
                assertEquals(35, run.get(32).newChunk(), "chunk 34 is area 1");
                AtomicInteger acked = new AtomicInteger();
                s.commit(run, true, (r, ok) -> acked.incrementAndGet());
                assertEquals(40, acked.get());
            }
            Map<Long, Long> reloaded = new HashMap<>();
            try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(1), false, 512)) {
                assertEquals(LoadResult.VALID, s.load(reloaded::put));
            }
            Map<Long, Long> expected = new HashMap<>();
            run.forEach(r -> expected.put(r.oldChunk(), r.newChunk()));
            assertEquals(expected, reloaded);
        }
    }

    @Test
    void anErrorInACommitCallbackFailsTheStoreInsteadOfLeavingLaterCommitsWaiting() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                PersistentExceptionStore s = store(cow, 8)) {
            PendingRemap first = s.prepare(1);
            PendingRemap second = s.prepare(2);
            List<String> answers = new ArrayList<>();
            s.commit(second, true, (r, ok) -> answers.add("second " + ok));
            AssertionError thrown = assertThrows(
                    AssertionError.class,
                    () -> s.commit(first, true, (r, ok) -> {
                        answers.add("first " + ok);
                        throw new AssertionError("a broken callback");
                    }));
            assertEquals("a broken callback", thrown.getMessage());
            assertEquals(
                    List.of("first true", "second false"),
                    answers,
                    "the commit after the broken callback is answered, as failed");
            s.commit(s.prepare(3), true, (r, ok) -> answers.add("third " + ok));
            assertEquals(
                    "third false", answers.getLast(), "a later commit is answered, not left waiting for a flusher");
            assertFalse(s.isValid());
            assertTrue(s.failure().contains("a broken callback"), s.failure());
        }
    }

    /** Commits {@code count} remaps, the first one last, so that all of them are staged at once. */
    private static List<Boolean> commitFirstLast(PersistentExceptionStore s, int count) throws IOException {
        List<PendingRemap> prepared = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            prepared.add(s.prepare(i));
        }
        List<Boolean> results = new ArrayList<>();
        for (int i = 1; i < count; i++) {
            s.commit(prepared.get(i), true, (r, ok) -> results.add(ok));
        }
        assertEquals(0, results.size(), "nothing is acknowledged before the first remap commits");
        s.commit(prepared.getFirst(), true, (r, ok) -> results.add(ok));
        return results;
    }

    @Test
    void remapsStagedPastSeveralAreasShareOneRoundAndLeaveTheKernelsImage() throws IOException {
        // chunk 1 sector: 32 entries per area; 100 remaps fill areas 0..2 and 4 entries of area 3.
        MemoryDevice oneByOne = new MemoryDevice("cow", 256 << 10);
        try (PersistentExceptionStore s = store(oneByOne, 1)) {
            for (int i = 0; i < 100; i++) {
                PendingRemap r = s.prepare(i);
                s.commit(r, true, (x, ok) -> assertTrue(ok));
            }
            assertEquals("105/512 5", s.usage().statusString(), "chunks 0..104: header, areas 0..3, 100 data");
        }
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        // Stale entries where areas 1..4 go (a reused COW): each must be zeroed before the area before it fills.
        for (long area = 1; area <= 4; area++) {
            cow.media()
                    .write(
                            (1 + area * 33) * 512,
                            MemorySegment.ofArray(new byte[512]).fill((byte) 0x55));
        }
        try (PersistentExceptionStore s = store(cow, 1)) {
            long flushesBefore = cow.flushes();
            List<Boolean> results = commitFirstLast(s, 100);
            assertEquals(100, results.stream().filter(b -> b).count());
            assertEquals(2, cow.flushes() - flushesBefore, "4 areas, one round: data flush + metadata flush");
            assertEquals("105/512 5", s.usage().statusString());
        }
        MemoryDevice media = (MemoryDevice) cow.media();
        for (long area = 0; area <= 3; area++) {
            long at = (1 + area * 33) * 512;
            assertEquals(
                    -1,
                    oneByOne.contents()
                            .asSlice(at, 512)
                            .mismatch(media.contents().asSlice(at, 512)),
                    "area " + area + " as one round per area writes it");
        }
        List<Long> loaded = new ArrayList<>();
        try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(1), false, 512)) {
            assertEquals(LoadResult.VALID, s.load((o, n) -> loaded.add(o)));
        }
        assertEquals(100, loaded.size());
    }

    @Test
    void whileOthersAreOutstandingARoundTakesWholeAreasOnly() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10);
                PersistentExceptionStore s = store(cow, 1)) {
            List<PendingRemap> prepared = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                prepared.add(s.prepare(i));
            }
            AtomicInteger acked = new AtomicInteger();
            for (int i = 69; i >= 0; i--) {
                s.commit(prepared.get(i), true, (r, ok) -> acked.incrementAndGet());
            }
            assertEquals(64, acked.get(), "areas 0 and 1 are full and written; 6 entries of area 2 wait for the rest");
            for (int i = 70; i < 100; i++) {
                s.commit(prepared.get(i), true, (r, ok) -> acked.incrementAndGet());
            }
            assertEquals(100, acked.get());
        }
    }

    @Test
    void anAreaWhoseNextAreaIsPastTheEndOfTheCowFailsInARoundOfItsOwn() throws IOException {
        // header, area 0, 32 data chunks, area 1, 32 data chunks: no room for area 2.
        try (MemoryDevice cow = new MemoryDevice("cow", 67 * 512);
                PersistentExceptionStore s = store(cow, 1)) {
            List<Boolean> results = commitFirstLast(s, 64);
            assertEquals(List.of(true, false), List.of(results.get(31), results.get(32)));
            assertEquals(32, results.stream().filter(b -> b).count(), "area 0 committed as the kernel's first round");
            assertFalse(s.isValid(), "zeroing area 2 fails: invalid, as the kernel");
        }
    }

    @Test
    void theNextAreaIsZeroedBeforeTheFullOneIsWritten() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10)) {
            cow.write(34 * 512, MemorySegment.ofArray(new byte[512]).fill((byte) 0x77)); // area 1 = chunk 34
            try (PersistentExceptionStore s = store(cow, 1)) {
                for (int i = 0; i < 32; i++) {
                    PendingRemap r = s.prepare(i);
                    s.commit(r, true, (x, ok) -> assertTrue(ok));
                }
                assertTrue(Patterns.isZero(cow.contents().asSlice(34 * 512, 512)));
                assertEquals(35, s.prepare(100).newChunk(), "chunk 34 is area 1: skipped");
            }
        }
    }

    @Test
    void aCowEndingOnAnAreaBoundaryIsInvalidatedWhenTheAreaFills() throws IOException {
        // header + area 0 + 32 data chunks, no room for area 1.
        try (MemoryDevice cow = new MemoryDevice("cow", 34 * 512);
                PersistentExceptionStore s = store(cow, 1)) {
            List<Boolean> results = new ArrayList<>();
            for (int i = 0; i < 32; i++) {
                PendingRemap r = s.prepare(i);
                s.commit(r, true, (x, ok) -> results.add(ok));
            }
            assertEquals(31, results.stream().filter(b -> b).count());
            assertFalse(results.getLast(), "the commit that fills the area fails");
            assertFalse(s.isValid());
        }
    }

    @Test
    void failedMetadataWritesInvalidateAndTheCowReloadsAsInvalid() throws IOException {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        PersistentExceptionStore s = store(cow, 8);
        PendingRemap good = s.prepare(1);
        s.commit(good, true, (r, ok) -> assertTrue(ok));
        cow.failNth(FaultyDevice.Op.WRITE, 1);
        boolean[] result = {true};
        s.commit(s.prepare(2), true, (r, ok) -> result[0] = ok);
        assertFalse(result[0]);
        assertFalse(s.isValid());
        s.invalidate(); // what the snapshot does on a failed commit
        s.close();
        cow.flush();
        assertEquals(0, cow.media() instanceof MemoryDevice m ? m.contents().get(LE32, 4) : -1, "header valid = 0");
        PersistentExceptionStore again = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
        assertEquals(LoadResult.INVALID, again.load((o, n) -> {}));
        again.close();
    }

    @Test
    void aFailedFlushIsNeverAcknowledged() throws IOException {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            cow.failNth(FaultyDevice.Op.FLUSH, 2);
            boolean[] result = {true};
            s.commit(s.prepare(2), true, (r, ok) -> result[0] = ok);
            assertFalse(result[0]);
            assertFalse(s.isValid());
        }
    }

    @Test
    void mergeTakesRunsFromTheTailWithinOneAreaUntilOnlyTheHeaderIsLeft() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10)) {
            try (PersistentExceptionStore s = store(cow, 1)) {
                // 40 remaps over two areas: old 100..139 -> new 2..33, 35..42 (34 is area 1)
                for (int i = 0; i < 40; i++) {
                    PendingRemap r = s.prepare(100 + i);
                    s.commit(r, true, (x, ok) -> assertTrue(ok));
                }
                assertEquals("43/512 3", s.usage().statusString());
                MergeRun run = s.prepareMerge();
                assertEquals(new MergeRun(139, 42, 8), run, "area 1 holds 8 consecutive entries");
                s.commitMerge(8);
                assertEquals(0, entryNew(cow, 512, 1, 0, 32), "merged entries are zeroed on disk");
                run = s.prepareMerge();
                assertEquals(new MergeRun(131, 33, 32), run, "then area 0, a run of 32");
                s.commitMerge(12);
                assertEquals("22/512 2", s.usage().statusString());
                s.commitMerge(20);
                assertNull(s.prepareMerge());
                assertEquals("2/512 2", s.usage().statusString(), "allocated == metadata: merge complete");
                assertTrue(Patterns.isZero(cow.contents().asSlice(512, 512)), "area 0 is all zeroes");
            }
        }
    }

    @Test
    void aFailedCommitMergeKeepsTheEntriesSoThatARetryMergesThemAgain() throws IOException {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        try (PersistentExceptionStore s = store(cow, 1)) {
            for (int i = 0; i < 3; i++) {
                s.commit(s.prepare(10 + i), true, (x, ok) -> assertTrue(ok));
            }
            MergeRun run = s.prepareMerge();
            assertEquals(new MergeRun(12, 4, 3), run);
            cow.failNth(FaultyDevice.Op.FLUSH, 1);
            assertThrows(IOException.class, () -> s.commitMerge(3));
            assertEquals("5/512 2", s.usage().statusString(), "nothing was forgotten");
            assertEquals(run, s.prepareMerge(), "the same run comes again, not (0, 0)");
            s.commitMerge(3);
            assertNull(s.prepareMerge());
            assertEquals("2/512 2", s.usage().statusString());
        }
    }

    @Test
    void aPartlyMergedCowReloadsWithTheRemainingEntries() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 256 << 10)) {
            try (PersistentExceptionStore s = store(cow, 1)) {
                for (int i = 0; i < 10; i++) {
                    PendingRemap r = s.prepare(i * 2L);
                    s.commit(r, true, (x, ok) -> {});
                }
                MergeRun run = s.prepareMerge();
                assertEquals(1, run.count(), "old chunks 2 apart are not a run");
                s.commitMerge(1);
            }
            Map<Long, Long> loaded = new HashMap<>();
            try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(1), false, 512)) {
                s.load(loaded::put);
                assertEquals(9, loaded.size());
                assertEquals("11/512 2", s.usage().statusString());
            }
        }
    }

    // ---- bad input: a clear error, and the COW is not modified ------------------------------------

    private static MemoryDevice basicCow() {
        return KernelFixtures.imageDevice("basic", "cow.img");
    }

    /** The load refuses {@code cow} with {@code message}, and the kernel store's {@code errno} for it. */
    private static void assertRefused(MemoryDevice cow, Errno errno, String message) {
        String before = KernelFixtures.sha256(cow.contents());
        PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
        CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> s.load((o, n) -> {}));
        s.close();
        assertEquals(message, e.getMessage());
        assertEquals(errno, e.errno(), message);
        assertEquals(before, KernelFixtures.sha256(cow.contents()), "the COW was not modified");
    }

    /** Read-modify-write of the logical block holding {@code offset}. */
    private static void poke(MemoryDevice cow, long offset, java.util.function.Consumer<MemorySegment> change) {
        int block = cow.logicalBlockBytes();
        long start = offset - offset % block;
        MemorySegment copy = MemorySegment.ofArray(new byte[block]);
        copy.copyFrom(cow.contents().asSlice(start, block));
        change.accept(copy.asSlice(offset - start));
        cow.write(start, copy);
    }

    private static void poke32(MemoryDevice cow, long offset, int value) {
        poke(cow, offset, at -> at.set(LE32, 0, value));
    }

    private static void poke64(MemoryDevice cow, long offset, long value) {
        poke(cow, offset, at -> at.set(LE64, 0, value));
    }

    @Test
    void wrongMagic() {
        MemoryDevice cow = basicCow();
        poke32(cow, 0, 0x12345678);
        assertRefused(cow, Errno.ENXIO, "Invalid or corrupt snapshot");
    }

    @Test
    void version2() {
        MemoryDevice cow = basicCow();
        poke32(cow, 8, 2);
        assertRefused(cow, Errno.EINVAL, "unable to handle snapshot disk version 2");
    }

    @Test
    void badChunkSizes() {
        for (int chunk : new int[] {0, 3, 65}) {
            MemoryDevice cow = basicCow();
            poke32(cow, 12, chunk);
            assertRefused(
                    cow, Errno.EINVAL, "invalid on-disk chunk size " + chunk + ": Chunk size is not a power of 2.");
        }
        MemoryDevice huge = basicCow();
        poke32(huge, 12, 1 << 20);
        assertRefused(
                huge,
                Errno.EIO,
                "the COW basic/cow.img (4194304 bytes) is too small for the header chunk with chunk size 1048576");
        MemoryDevice tooHigh = basicCow();
        poke32(tooHigh, 12, 1 << 22);
        assertRefused(tooHigh, Errno.EINVAL, "invalid on-disk chunk size 4194304: Chunk size is too high.");
    }

    @Test
    void chunkSizeNotAMultipleOfTheLogicalBlock() {
        byte[] image = KernelFixtures.image("basic", "cow.img");
        MemoryDevice cow = new MemoryDevice("cow4k", image.length, 4096);
        cow.write(0, MemorySegment.ofArray(image));
        poke32(cow, 12, 1);
        assertRefused(
                cow, Errno.EINVAL, "invalid on-disk chunk size 1: Chunk size is not a multiple of device blocksize.");
    }

    @Test
    void truncatedCow() {
        MemoryDevice tiny = new MemoryDevice("tiny", 512);
        tiny.write(
                0,
                MemorySegment.ofArray(KernelFixtures.image("basic", "cow.img")).asSlice(0, 512));
        assertRefused(tiny, Errno.EIO, "the COW tiny (512 bytes) is too small for the header chunk with chunk size 8");
        // Header and a full area 0, but the COW ends before area 1: the list has no terminator.
        MemoryDevice cut = new MemoryDevice("cut", 3 * 4096);
        cut.write(
                0,
                MemorySegment.ofArray(KernelFixtures.image("basic", "cow.img")).asSlice(0, 3 * 4096));
        for (int i = 11; i < 256; i++) {
            poke64(cut, 4096 + i * 16L, 5000 + i);
            poke64(cut, 4096 + i * 16L + 8, 2);
        }
        PersistentExceptionStore s = new PersistentExceptionStore(cut, new ChunkSize(8), false, 512);
        CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> s.load((o, n) -> {}));
        assertEquals(
                "exception 1 of area 0 (byte 4112) points at COW chunk 3, past the end of the COW (3 chunks)",
                e.getMessage());
    }

    @Test
    void areaWithoutTerminator() {
        // A COW of exactly header + area 0 + 256 data chunks whose area 0 is full: area 1 is missing.
        MemoryDevice cow = new MemoryDevice("cow", 258 * 4096L);
        cow.write(
                0,
                MemorySegment.ofArray(KernelFixtures.image("basic", "cow.img")).asSlice(0, 4096));
        for (int i = 0; i < 256; i++) {
            poke64(cow, 4096 + i * 16L, i);
            poke64(cow, 4096 + i * 16L + 8, 2 + i);
        }
        assertRefused(
                cow,
                Errno.EIO,
                "area 1 (chunk 258) lies beyond the end of the COW (258 chunks): the exception list has no terminator");
    }

    @Test
    void entriesPointingPastTheEndOrIntoMetadata() {
        MemoryDevice past = basicCow();
        poke64(past, 4096 + 3 * 16 + 8, 1024);
        assertRefused(
                past,
                Errno.EINVAL,
                "exception 3 of area 0 (byte 4144) points at COW chunk 1024, past the end of the COW (1024 chunks)");
        MemoryDevice meta = basicCow();
        poke64(meta, 4096 + 5 * 16 + 8, 258);
        assertRefused(
                meta, Errno.EINVAL, "exception 5 of area 0 (byte 4176) points at COW chunk 258, which holds metadata");
        MemoryDevice twice = basicCow();
        poke64(twice, 4096 + 6 * 16 + 8, 3);
        assertRefused(
                twice,
                Errno.EINVAL,
                "exception 6 of area 0 (byte 4192) points at COW chunk 3, which an earlier exception uses too");
    }

    @Test
    void duplicateOriginChunksAreRefusedByTheExceptionTable() throws IOException {
        MemoryDevice cow = basicCow();
        poke64(cow, 4096 + 4 * 16, 0); // entry 4 maps origin chunk 0 again
        String before = KernelFixtures.sha256(cow.contents());
        try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
                dmsnap.store.ExceptionTable table = new dmsnap.store.ExceptionTable()) {
            CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> s.load(table.loadingSink()));
            assertEquals(
                    "origin chunk 0 has a second exception (COW chunk 6; the first points at COW chunk 2)",
                    e.getMessage());
        }
        assertEquals(before, KernelFixtures.sha256(cow.contents()));
    }

    /**
     * Found by CowImageFuzzTest (seed 1699694008146732886, case 48): an origin chunk the
     * exception table cannot hold made an IllegalArgumentException escape the load.
     */
    @Test
    void originChunksBeyondWhatTheExceptionTableHoldsAreRefusedAsCorrupt() throws IOException {
        for (long old : new long[] {1L << 43, 1L << 48, Long.MAX_VALUE}) {
            MemoryDevice cow = basicCow();
            poke64(cow, 4096 + 4 * 16, old);
            String before = KernelFixtures.sha256(cow.contents());
            try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
                    dmsnap.store.ExceptionTable table = new dmsnap.store.ExceptionTable()) {
                CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> s.load(table.loadingSink()));
                assertEquals(
                        "origin chunk " + old + " (COW chunk 6) is beyond what the exception table holds"
                                + " (origin chunks up to 8796093022207, COW chunks up to 1099511627775)",
                        e.getMessage());
            }
            assertEquals(before, KernelFixtures.sha256(cow.contents()));
        }
    }

    @Test
    void aTransientCowIsNotAPersistentOne() {
        // The kernel's transient COW holds only data: its first word is origin data ("ORG0").
        assertRefused(KernelFixtures.imageDevice("transient", "cow.img"), Errno.ENXIO, "Invalid or corrupt snapshot");
    }

    /** A COW that fails every request reaching past its first MiB (a dm table of linear, then error). */
    private static FaultyDevice failingPastFirstMib(Device media, List<FaultyDevice.Request> requests) {
        FaultyDevice cow = new FaultyDevice(media);
        cow.failWhen(r -> {
            requests.add(r);
            return r.offsetBytes() + r.lengthBytes() > (1 << 20);
        });
        return cow;
    }

    /** Whether every read or write of {@code requests} lies in the header chunk or area 0 (chunk 8: [0, 8192)). */
    private static boolean onlyHeaderAndAreaZero(List<FaultyDevice.Request> requests) {
        return requests.stream()
                .allMatch(r -> r.op() == FaultyDevice.Op.FLUSH || r.offsetBytes() + r.lengthBytes() <= 8192);
    }

    @Test
    void activationReadsOnlyTheHeaderAndTheAreasUpToTheTerminator() throws IOException {
        List<FaultyDevice.Request> requests = new ArrayList<>();
        FaultyDevice fresh = failingPastFirstMib(new MemoryDevice("cow", 4 << 20), requests);
        try (PersistentExceptionStore s = store(fresh, 8)) {
            assertTrue(
                    onlyHeaderAndAreaZero(requests), "a new COW: header and area 0 only, as the kernel: " + requests);
            assertEquals(new dmsnap.store.StoreUsage(16, 8192, 16), s.usage());
        }
        // A COW with three exceptions in area 0, activated again over the failing device.
        MemoryDevice media = new MemoryDevice("cow", 4 << 20);
        try (PersistentExceptionStore s = store(media, 8)) {
            for (int i = 0; i < 3; i++) {
                s.commit(s.prepare(i), true, (r, ok) -> assertTrue(ok));
            }
        }
        requests.clear();
        Map<Long, Long> loaded = new HashMap<>();
        try (PersistentExceptionStore s =
                new PersistentExceptionStore(failingPastFirstMib(media, requests), new ChunkSize(8), false, 512)) {
            assertEquals(LoadResult.VALID, s.load(loaded::put));
            assertEquals(Map.of(0L, 2L, 1L, 3L, 2L, 4L), loaded);
            assertTrue(onlyHeaderAndAreaZero(requests), "an existing COW: header and area 0 only: " + requests);
        }
    }

    @Test
    void onlyTheCommitThatNeedsTheFailingRegionInvalidates() throws IOException {
        List<FaultyDevice.Request> requests = new ArrayList<>();
        FaultyDevice cow = failingPastFirstMib(new MemoryDevice("cow", 4 << 20), requests);
        try (PersistentExceptionStore s = store(cow, 8)) {
            // Area 0 holds 256 entries; the commit that fills it zeroes area 1 (chunk 258), past 1 MiB.
            for (int i = 0; i < 255; i++) {
                s.commit(s.prepare(i), true, (r, ok) -> assertTrue(ok));
            }
            assertTrue(s.isValid());
            boolean[] last = {true};
            s.commit(s.prepare(255), true, (r, ok) -> last[0] = ok);
            assertFalse(last[0]);
            assertFalse(s.isValid());
        }
    }
}
