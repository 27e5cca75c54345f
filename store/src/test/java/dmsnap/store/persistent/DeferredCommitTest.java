package dmsnap.store.persistent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.TransientExceptionStore;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Deferred commits (the cache modes none and writeback) in the persistent store: a deferred
 * remap is written by the next round something else starts, never by a round of its own, and
 * each trigger starts one: an eager commit, a full area, the deferred limit, {@code
 * commitThrough} and {@code sync}. No timing: the rounds run on the calling threads.
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
        List<String> answers = new ArrayList<>();
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

    @Test
    void anAreaThatFillsIsWrittenWithoutBeingAsked() throws Exception {
        // chunk 1 sector: 32 entries per area.
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 256 << 10));
        try (PersistentExceptionStore s = store(cow, 1)) {
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, 31, remaps);
            assertEquals(0, answers.size());
            answers.addAll(deferred(s, 1, remaps));
            assertEquals(32, answers.size(), "the 32nd filled area 0: the round zeroes area 1 and writes area 0");
            assertEquals("35/512 3", s.usage().statusString());
            cow.crash();
            assertEquals(32, loaded(cow, 1).size());
        }
    }

    @Test
    void atMostTheDeferredLimitWaits() throws Exception {
        // chunk 64 sectors: 2048 entries per area, more than the limit.
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 64L << 20));
        try (PersistentExceptionStore s = store(cow, 64)) {
            List<PendingRemap> remaps = new ArrayList<>();
            List<String> answers = deferred(s, PersistentExceptionStore.DEFERRED_LIMIT - 1, remaps);
            assertEquals(0, answers.size());
            answers.addAll(deferred(s, 1, remaps));
            assertEquals(PersistentExceptionStore.DEFERRED_LIMIT, answers.size());
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
