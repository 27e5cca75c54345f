package dmsnap.store.persistent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.TransientExceptionStore;
import dmsnap.store.device.FileDevice;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Deferred commits (the cache modes none and writeback) in the persistent store: a deferred
 * remap is written by the next round something else starts, never by a round of its own (not
 * even when it fills an area: several full areas may wait), and each trigger starts one: an
 * eager commit, the deferred limit, {@code commitThrough} and {@code sync}; a round writes every
 * area it fills with one data flush before them. No timing: the rounds run on the calling
 * threads, except the one the deferred limit starts, which runs on the store's own thread and
 * is stopped at a {@link FaultyDevice.Gate} where a test looks at it.
 */
class DeferredCommitTest {

    private static PersistentExceptionStore store(FaultyDevice cow, long chunkSectors) throws IOException {
        PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512);
        assertEquals(LoadResult.VALID, s.load((o, n) -> {}));
        return s;
    }

    /** Prepares {@code count} remaps and commits them deferred; returns what their callbacks said, in order. */
    private static List<String> deferred(PersistentExceptionStore s, int count, List<PendingRemap> into)
            throws IOException {
        // A round the deferred limit starts answers on the store's thread.
        return deferred(s, count, into, Collections.synchronizedList(new ArrayList<>()));
    }

    /** The same, the callbacks adding to {@code answers}. */
    private static List<String> deferred(
            PersistentExceptionStore s, int count, List<PendingRemap> into, List<String> answers) throws IOException {
        for (int i = 0; i < count; i++) {
            PendingRemap r = s.prepare(1000 + into.size());
            into.add(r);
            s.commitDeferred(r, true, (remap, ok) -> answers.add(remap.oldChunk() + " " + ok));
        }
        return answers;
    }

    private static List<Long> loaded(FaultyDevice cow, long chunkSectors) throws IOException {
        List<Long> old = new ArrayList<>();
        try (PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512)) {
            assertEquals(LoadResult.VALID, s.load((o, n) -> old.add(o)));
        }
        return old;
    }

    @Test
    void aDeferredCommitWaitsForASyncWhichWritesThemAllInOneRound() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            long flushes = cow.flushes();
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 3, remaps);
            assertEquals(List.of(), answers, "nothing is written while nobody asks");
            assertEquals(flushes, cow.flushes());
            assertEquals("40/2048 16", s.usage().statusString(), "allocated chunks count at once, as the kernel's");
            s.sync(false);
            assertEquals(List.of("1000 true", "1001 true", "1002 true"), answers);
            assertEquals(2, cow.flushes() - flushes, "one round: data flush, metadata flush");
            cow.crash();
            assertEquals(List.of(1000L, 1001L, 1002L), loaded(cow, 8));
        }
    }

    @Test
    void aPowerCutBeforeTheSyncLosesOnlyTheDeferredRemaps() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            List<PendingRemap> remaps = new ArrayList<>();
            deferred(s, 2, remaps);
            s.sync(false);
            deferred(s, 2, remaps);
            cow.crash();
            assertEquals(List.of(1000L, 1001L), loaded(cow, 8), "the synced ones, in order, no hole");
        }
    }

    @Test
    void anEagerCommitTakesTheDeferredOnesAlong() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 2, remaps);
            long flushes = cow.flushes();
            PendingRemap origin = s.prepare(7);
            s.commit(origin, true, (r, ok) -> answers.add("copy-out " + ok));
            assertEquals(List.of("1000 true", "1001 true", "copy-out true"), answers);
            assertEquals(2, cow.flushes() - flushes, "one round for all three");
        }
    }

    /** Area {@code k}'s byte offset with 1-sector chunks (32 entries per area: chunk 1 + 33 k). */
    private static long area1(long k) {
        return (1 + 33 * k) * 512;
    }

    @Test
    void fullAreasWaitForTheSyncWhichWritesThemAllWithOneDataFlushBeforeThem() throws Exception {
        // chunk 1 sector: 32 entries per area; 100 remaps fill areas 0, 1 and 2 and start area 3.
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        try (PersistentExceptionStore s = store(cow, 1)) {
            long flushes = cow.flushes();
            List<FaultyDevice.Request> requests = new ArrayList<>();
            cow.failWhen(r -> {
                requests.add(r);
                return false;
            });
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 100, remaps);
            assertEquals(List.of(), answers, "a full area waits as a partial one does");
            assertEquals(List.of(), requests, "no area written, nothing flushed");
            assertEquals("105/512 5", s.usage().statusString(), "the kernel's count: areas 0-3 and the header");
            s.sync(false);
            assertEquals(100, answers.size());
            assertEquals("1000 true", answers.getFirst());
            assertEquals("1099 true", answers.getLast());
            assertEquals(2, cow.flushes() - flushes, "one round: one data flush, one flush of the four areas");
            int dataFlush = requests.indexOf(new FaultyDevice.Request(FaultyDevice.Op.FLUSH, 0, 0));
            for (long k = 1; k <= 3; k++) {
                long at = area1(k);
                List<Integer> writes = new ArrayList<>();
                for (int i = 0; i < requests.size(); i++) {
                    FaultyDevice.Request r = requests.get(i);
                    if (r.op() == FaultyDevice.Op.WRITE
                            && r.offsetBytes() <= at
                            && at < r.offsetBytes() + r.lengthBytes()) {
                        writes.add(i);
                    }
                }
                assertEquals(2, writes.size(), "area " + k + ": zeroed, then its entries: " + requests);
                assertTrue(writes.get(0) < dataFlush && dataFlush < writes.get(1), "area " + k + ": " + requests);
            }
            assertEquals("105/512 5", s.usage().statusString());
            cow.crash();
            List<Long> expected = new ArrayList<>();
            for (long i = 0; i < 100; i++) {
                expected.add(1000 + i);
            }
            assertEquals(expected, loaded(cow, 1));
        }
    }

    @Test
    void aPowerCutAtEitherFlushOfARoundOverSeveralAreasLeavesAPrefixWithItsData() throws Exception {
        for (int cut = 0; cut < 2; cut++) {
            for (long partial = -1; partial < 8; partial++) {
                String what = "cut at flush " + cut + (partial < 0 ? "" : ", partial write-back " + partial);
                FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
                List<PendingRemap> remaps = new ArrayList<>();
                try (PersistentExceptionStore s = store(cow, 1)) {
                    deferred(s, 100, remaps);
                    for (PendingRemap r : remaps) {
                        cow.write(
                                r.newChunk() * 512,
                                MemorySegment.ofArray(new byte[512]).fill((byte) r.oldChunk()));
                    }
                    long flushesBefore = cow.flushes();
                    int failing = cut;
                    cow.failWhen(r -> cow.flushes() - flushesBefore >= failing && r.op() == FaultyDevice.Op.FLUSH);
                    assertThrows(IOException.class, () -> s.sync(false), what);
                    cow.failWhen(r -> true); // the power is off
                }
                if (partial < 0) {
                    cow.crash();
                } else {
                    cow.crash(new java.util.Random(partial));
                }
                cow.failWhen(null); // the power is back only after the crash
                List<Long> back = loaded(cow, 1);
                for (int i = 0; i < back.size(); i++) {
                    assertEquals(1000L + i, back.get(i), what + ": a prefix in allocation order");
                    MemorySegment data = MemorySegment.ofArray(new byte[512]);
                    cow.read(remaps.get(i).newChunk() * 512, data);
                    assertEquals(
                            -1,
                            data.mismatch(MemorySegment.ofArray(new byte[512]).fill((byte) (1000 + i))),
                            what + ": remap " + i + " loads with its data");
                }
                if (cut == 0) {
                    assertEquals(List.of(), back, what + ": no entry before the data flush");
                }
            }
        }
    }

    @Test
    void anEagerCommitThatFillsAnAreaIsWrittenAtOnceAsTheKernels() throws Exception {
        // directsync, and an origin write's copy-out: chunk 1 sector, 32 entries per area.
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        try (PersistentExceptionStore s = store(cow, 1)) {
            List<PendingRemap> remaps = new ArrayList<>();
            for (int i = 0; i < 33; i++) {
                remaps.add(s.prepare(i));
            }
            List<String> answers = new ArrayList<>();
            for (int i = 0; i < 32; i++) {
                s.commit(remaps.get(i), true, (r, ok) -> answers.add(r.oldChunk() + " " + ok));
            }
            assertEquals(32, answers.size(), "the area filled: written while the 33rd is still outstanding");
            s.commit(remaps.get(32), true, (r, ok) -> answers.add(r.oldChunk() + " " + ok));
            assertEquals(33, answers.size());
        }
    }

    @Test
    void aDemandWithWritesOutstandingWritesFullAreasAndTheRestInOneRound() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        try (PersistentExceptionStore s = store(cow, 1)) {
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 70, remaps); // areas 0 and 1 full, 6 in area 2
            PendingRemap outstanding = s.prepare(7);
            long flushes = cow.flushes();
            s.commitThrough(remaps.getLast().sequence()); // an origin write, or the commit interval
            assertEquals(70, answers.size());
            assertEquals(2, cow.flushes() - flushes, "one round, not one for the full areas and one for the rest");
            s.commitDeferred(outstanding, true, (r, ok) -> answers.add("last " + ok));
            s.sync(false);
            assertEquals("last true", answers.getLast());
            assertEquals(71, loaded(cow, 1).size());
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {8, 128})
    void atMostTheDeferredLimitWaitsOverAsManyAreasAsItFills(long chunkSectors) throws Exception {
        // 4 KiB chunks: 16384 = 64 areas of 256 entries, one round; 64 KiB chunks: 1024 (64 MiB).
        int limit = PersistentExceptionStore.deferredLimit(chunkSectors * 512);
        assertEquals(chunkSectors == 8 ? PersistentExceptionStore.DEFERRED_LIMIT : 1024, limit);
        long cowBytes = (limit + limit / (chunkSectors * 512 / 16) + 4) * chunkSectors * 512;
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", cowBytes));
        try (PersistentExceptionStore s = store(cow, chunkSectors)) {
            long flushes = cow.flushes();
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, limit - 1, remaps);
            assertEquals(0, answers.size());
            assertEquals(flushes, cow.flushes());
            deferred(s, 1, remaps, answers); // starts the round, on the store's thread
            s.sync(false);
            assertEquals(limit, answers.size());
            assertEquals(2, cow.flushes() - flushes, "one round");
            cow.crash();
            assertEquals(limit, loaded(cow, chunkSectors).size());
        }
    }

    /** 64 KiB chunks: the limit is 1024 remaps, and twice as many still fit in area 0 (4096 entries). */
    private static final long CHUNK_64K = 128;

    private static final int LIMIT_64K = PersistentExceptionStore.deferredLimit(CHUNK_64K * 512);

    /**
     * A COW of room for three times the limit of 64 KiB chunks, a sparse file (a memory device
     * would hold 200 MiB), behind a fault-injecting cache.
     */
    private static FaultyDevice sparseCow(Path dir) throws IOException {
        Path file = TempFiles.sparse(dir, "cow", (3L * LIMIT_64K + 8) * CHUNK_64K * 512);
        return new FaultyDevice(FileDevice.open(file, FileDevice.Option.BUFFERED));
    }

    /** As {@link #store}, without reserving the sparse file's blocks. */
    private static PersistentExceptionStore sparseStore(FaultyDevice cow) throws IOException {
        PersistentExceptionStore s = new PersistentExceptionStore(cow, new ChunkSize(CHUNK_64K), false, 512, null);
        assertEquals(LoadResult.VALID, s.load((o, n) -> {}));
        return s;
    }

    /** Holds the flushes of every thread but this one: those of a round that runs elsewhere. */
    private static FaultyDevice.Gate holdFlushesElsewhere(FaultyDevice cow) {
        Thread writer = Thread.currentThread();
        return cow.hold(r -> r.op() == FaultyDevice.Op.FLUSH && Thread.currentThread() != writer);
    }

    /** Waits until {@code n} threads wait for a round in {@code s}, failing when {@code thread} ends first. */
    private static void awaitWaitingForRound(PersistentExceptionStore s, int n, Thread thread) {
        while (s.waitingForRound() < n) {
            assertTrue(thread.isAlive(), thread.getName() + " returned without waiting for the round");
            Thread.yield();
        }
    }

    private static void assertAllCommitted(List<String> answers, int count) {
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            expected.add((1000 + i) + " true");
        }
        assertEquals(expected, answers);
    }

    @Test
    void theWriteThatReachesTheLimitReturnsWhileItsRoundRunsAndAFlushWaitsForIt(@TempDir Path dir) throws Exception {
        try (FaultyDevice cow = sparseCow(dir);
                PersistentExceptionStore s = sparseStore(cow)) {
            FaultyDevice.Gate flushes = holdFlushesElsewhere(cow);
            long flushesBefore = cow.flushes();
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, LIMIT_64K, remaps);
            assertEquals(List.of(), answers, "the write that reached the limit returned before its round");
            flushes.awaitParked(1); // the round runs on the store's thread, held at its data flush
            deferred(s, 2, remaps, answers); // writes go on meanwhile, deferred
            AtomicInteger answeredAtFlush = new AtomicInteger(-1);
            Thread flush = Thread.ofPlatform().name("flush").start(() -> {
                try {
                    s.sync(true); // NBD_CMD_FLUSH
                    answeredAtFlush.set(answers.size());
                } catch (IOException | InterruptedException e) {
                    throw new AssertionError(e);
                }
            });
            assertEquals(-1, answeredAtFlush.get(), "the round is held: the FLUSH cannot have returned");
            flushes.open();
            flush.join();
            assertEquals(LIMIT_64K + 2, answeredAtFlush.get(), "the FLUSH waited for everything deferred before it");
            assertAllCommitted(answers, LIMIT_64K + 2);
            assertEquals(
                    4, cow.flushes() - flushesBefore, "the limit's round, then the FLUSH's (its data flush covers it)");
            cow.crash();
            assertEquals(LIMIT_64K + 2, loaded(cow, CHUNK_64K).size());
        }
    }

    @Test
    void aWriterThatFindsTwiceTheLimitWaitingWaitsForTheRound(@TempDir Path dir) throws Exception {
        try (FaultyDevice cow = sparseCow(dir);
                PersistentExceptionStore s = sparseStore(cow)) {
            assertEquals(2 * LIMIT_64K, PersistentExceptionStore.deferredBound(CHUNK_64K * 512));
            FaultyDevice.Gate flushes = holdFlushesElsewhere(cow);
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, LIMIT_64K, remaps);
            assertEquals(List.of(), answers, "the round runs on the store's thread");
            flushes.awaitParked(1);
            deferred(s, LIMIT_64K - 1, remaps, answers); // below the bound: no writer waits
            assertEquals(0, s.waitingForRound());
            PendingRemap last = s.prepare(1000 + remaps.size());
            remaps.add(last);
            AtomicBoolean returned = new AtomicBoolean();
            Thread writer = Thread.ofPlatform().name("writer").start(() -> {
                s.commitDeferred(last, true, (r, ok) -> answers.add(r.oldChunk() + " " + ok));
                returned.set(true);
            });
            awaitWaitingForRound(s, 1, writer);
            assertFalse(returned.get(), "the write that reached the bound waits for the round");
            assertEquals(List.of(), answers);
            flushes.open();
            writer.join();
            assertTrue(returned.get());
            s.sync(false);
            assertAllCommitted(answers, 2 * LIMIT_64K);
            cow.crash();
            assertEquals(2 * LIMIT_64K, loaded(cow, CHUNK_64K).size());
        }
    }

    @Test
    void closeWaitsForTheRoundTheLimitStartedAndItsThreadEnds(@TempDir Path dir) throws Exception {
        try (FaultyDevice cow = sparseCow(dir)) {
            PersistentExceptionStore s = sparseStore(cow);
            FaultyDevice.Gate flushes = holdFlushesElsewhere(cow);
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, LIMIT_64K, remaps);
            assertEquals(List.of(), answers, "the round runs on the store's thread");
            flushes.awaitParked(1);
            Thread closer = Thread.ofPlatform().name("closer").start(s::close);
            awaitWaitingForRound(s, 1, closer);
            flushes.open();
            closer.join();
            assertAllCommitted(answers, LIMIT_64K); // written, not failed by an unmapped area
            String roundThread = "dmsnap-commit-" + cow.name();
            assertTrue(
                    Thread.getAllStackTraces().keySet().stream()
                            .noneMatch(t -> t.getName().equals(roundThread)),
                    "the round's thread is gone");
            cow.crash();
            assertEquals(LIMIT_64K, loaded(cow, CHUNK_64K).size());
        }
    }

    @Test
    void commitThroughWritesAsSoonAsEveryRemapUpToItHasArrived() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            PendingRemap first = s.prepare(1);
            PendingRemap second = s.prepare(2);
            PendingRemap third = s.prepare(3);
            List<String> answers = new ArrayList<>();
            s.commitDeferred(second, true, (r, ok) -> answers.add("second"));
            s.commitThrough(second.sequence());
            assertEquals(List.of(), answers, "the first is still being copied: no hole may be written");
            s.commitDeferred(third, true, (r, ok) -> answers.add("third"));
            s.commitDeferred(first, true, (r, ok) -> answers.add("first"));
            assertEquals(List.of("first", "second", "third"), answers, "its arrival completed the demand");
        }
    }

    @Test
    void aSyncWithoutDeferredRemapsFlushesTheDataOnlyWhenAsked() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            long flushes = cow.flushes();
            s.sync(false);
            assertEquals(flushes, cow.flushes(), "suspend with nothing deferred costs nothing");
            s.sync(true);
            assertEquals(flushes + 1, cow.flushes(), "FLUSH: the data written to mapped chunks");
            s.commit(s.prepare(5), true, (r, ok) -> {});
            flushes = cow.flushes();
            s.sync(true);
            assertEquals(flushes + 1, cow.flushes(), "committed already: only the data flush");
        }
    }

    @Test
    void aSyncWhoseRemapsARoundTookBeforeItAskedFlushesAgain() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            List<PendingRemap> remaps = new ArrayList<>();
            deferred(s, 2, remaps);
            long flushesBefore = cow.flushes();
            FaultyDevice.Gate flushes = cow.hold(r -> r.op() == FaultyDevice.Op.FLUSH);
            CompletableFuture<Void> first = CompletableFuture.runAsync(() -> {
                try {
                    s.sync(false);
                } catch (IOException | InterruptedException e) {
                    throw new AssertionError(e);
                }
            });
            flushes.awaitParked(1); // the round has taken both remaps and flushes their data
            // A write completed now is not covered by that flush.
            cow.write(0x40000, MemorySegment.ofArray(new byte[512]).fill((byte) 7));
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread second = Thread.ofPlatform().start(() -> {
                try {
                    s.sync(true);
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            flushes.open();
            first.join();
            second.join();
            assertEquals(null, failed.get());
            assertEquals(3, cow.flushes() - flushesBefore, "the round's two flushes, then the second sync's own");
            cow.crash();
            MemorySegment back = MemorySegment.ofArray(new byte[512]);
            cow.read(0x40000, back);
            assertEquals(7, back.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 511), "the write before the FLUSH");
        }
    }

    @Test
    void aSyncReportsACommitThatFailed() throws Exception {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 1 << 20));
        try (PersistentExceptionStore s = store(cow, 8)) {
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 2, remaps);
            cow.failNth(FaultyDevice.Op.FLUSH, 1);
            IOException e = assertThrows(IOException.class, () -> s.sync(false));
            assertTrue(e.getMessage().contains("failed: writing exception area 0 failed: fdatasync"), e.getMessage());
            assertEquals(List.of("1000 false", "1001 false"), answers);
            assertFalse(s.isValid());
        }
    }

    @Test
    void theTransientStoreAnswersADeferredCommitAtOnce() throws Exception {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                TransientExceptionStore s = new TransientExceptionStore(cow, new ChunkSize(8))) {
            List<String> answers = new ArrayList<>();
            PendingRemap r = s.prepare(1);
            s.commitDeferred(r, true, (remap, ok) -> answers.add("done " + ok));
            assertEquals(List.of("done true"), answers);
            s.sync(true);
        }
    }
}
