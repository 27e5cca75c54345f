package dmsnap.store.persistent;

import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dmsnap.store.ChunkSize;
import dmsnap.store.CommitCallback;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreFullException;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.Seeds;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Crash consistency of the persistent store, against a model: seeded random prepare/commit
 * sequences (commits in random order, several outstanding, area rollovers with small chunks) on
 * a {@link FaultyDevice}; power is lost at every flush boundary in turn, with a random subset of
 * the unflushed writes (possibly torn at a sector) and of the unsynced mapped metadata surviving.
 * After reload: the store loads, every remap whose callback reported success is there with its
 * data, and every remap that is there has exactly the data written for it. The same with deferred
 * commits (the cache modes none and writeback) and syncs now and then: every remap prepared before
 * a sync that returned is there too.
 */
@ExtendWith(Seeds.class)
class PersistentStoreCrashTest {
    private static final int SEQUENCES = Integer.getInteger("dmsnap.tests.crashSequences", 100);

    /** The data a remap's COW chunk holds: every 8 bytes = old chunk * 2^20 + sequence. */
    private static void fillFor(MemorySegment chunk, PendingRemap r) {
        for (long at = 0; at < chunk.byteSize(); at += 8) {
            chunk.set(JAVA_LONG_UNALIGNED, at, r.oldChunk() << 20 | r.sequence() | at << 40);
        }
    }

    private record Outcome(Map<Long, PendingRemap> acknowledged, Map<Long, PendingRemap> prepared, int flushes) {}

    /** Commits as the kernel, or deferred with syncs now and then (what a FLUSH does). */
    private enum Commits {
        KERNEL,
        DEFERRED
    }

    /**
     * Runs sequence {@code seed} on {@code cow}; power fails when the store asks for flush number
     * {@code crashAtFlush} (never when negative). Returns what was acknowledged.
     */
    private static Outcome run(FaultyDevice cow, long chunkSectors, long seed, int crashAtFlush, Commits commits)
            throws IOException {
        Random random = new Random(seed);
        int[] flushes = {0};
        boolean[] crashed = {false};
        cow.failWhen(req -> {
            if (crashed[0]) {
                return true;
            }
            if (req.op() == FaultyDevice.Op.FLUSH && flushes[0]++ == crashAtFlush) {
                crashed[0] = true;
                return true;
            }
            return false;
        });
        PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512);
        Map<Long, PendingRemap> acknowledged = new HashMap<>();
        Map<Long, PendingRemap> prepared = new HashMap<>();
        try (Arena arena = Arena.ofConfined()) {
            try {
                if (store.load((o, n) -> {}) != LoadResult.VALID) {
                    return new Outcome(acknowledged, prepared, flushes[0]);
                }
            } catch (IOException powerLostWhileFormatting) {
                return new Outcome(acknowledged, prepared, flushes[0]);
            }
            MemorySegment data = arena.allocate(chunkSectors * 512, 4096);
            long originChunks = 1 << 12;
            int rounds = 8 + random.nextInt(12);
            Set<Long> usedOld = new HashSet<>();
            for (int round = 0; round < rounds && !crashed[0]; round++) {
                List<PendingRemap> batch = new ArrayList<>();
                // Mostly a few at a time; now and then enough to stage several areas in one round.
                int n = random.nextInt(4) == 0 ? 1 + random.nextInt(100) : 1 + random.nextInt(6);
                for (int i = 0; i < n; i++) {
                    long old;
                    do {
                        old = random.nextInt(8) == 0 ? random.nextLong(originChunks) : usedOld.size() + 100L;
                    } while (!usedOld.add(old));
                    try {
                        batch.add(store.prepare(old));
                    } catch (StoreFullException full) {
                        break;
                    }
                }
                Collections.shuffle(batch, random);
                for (PendingRemap r : batch) {
                    prepared.put(r.oldChunk(), r);
                    fillFor(data, r);
                    try {
                        cow.write(r.newChunk() * chunkSectors * 512, data);
                        CommitCallback callback = (remap, ok) -> {
                            if (ok) {
                                acknowledged.put(remap.oldChunk(), remap);
                            }
                        };
                        if (commits == Commits.DEFERRED && random.nextInt(8) != 0) {
                            store.commitDeferred(r, true, callback);
                        } else {
                            store.commit(r, true, callback);
                        }
                    } catch (IOException e) {
                        store.commit(r, false, (remap, ok) -> assertFalse(ok, "a failed copy is never acknowledged"));
                    }
                }
                if (commits == Commits.DEFERRED && random.nextInt(3) == 0) {
                    Set<Long> before = new HashSet<>(prepared.keySet());
                    try {
                        store.sync(random.nextBoolean());
                    } catch (IOException powerLost) {
                        break;
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                    for (long old : before) {
                        assertTrue(acknowledged.containsKey(old), "remap of " + old + " prepared before a sync");
                    }
                }
            }
        } finally {
            store.close();
        }
        return new Outcome(acknowledged, prepared, flushes[0]);
    }

    private static void verifyAfterReload(FaultyDevice cow, long chunkSectors, Outcome outcome, String what)
            throws IOException {
        PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512);
        Map<Long, Long> loaded = new HashMap<>();
        LoadResult result;
        try {
            result = store.load((o, n) -> {
                if (loaded.put(o, n) != null) {
                    fail(what + ": origin chunk " + o + " loaded twice");
                }
            });
        } catch (IOException e) {
            throw new AssertionError(what + ": the store did not load after the crash: " + e.getMessage(), e);
        }
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(LoadResult.VALID, result, what);
            for (PendingRemap r : outcome.acknowledged().values()) {
                assertEquals(
                        Long.valueOf(r.newChunk()),
                        loaded.get(r.oldChunk()),
                        what + ": acknowledged remap " + r + " is missing after the crash");
            }
            MemorySegment expected = arena.allocate(chunkSectors * 512, 4096);
            MemorySegment actual = arena.allocate(chunkSectors * 512, 4096);
            long maxNew = 1;
            for (Map.Entry<Long, Long> e : loaded.entrySet()) {
                PendingRemap r = outcome.prepared().get(e.getKey());
                assertTrue(
                        r != null && r.newChunk() == e.getValue(),
                        what + ": loaded remap " + e.getKey() + "->" + e.getValue() + " was never prepared");
                fillFor(expected, r);
                cow.read(r.newChunk() * chunkSectors * 512, actual);
                assertEquals(-1, expected.mismatch(actual), what + ": remap " + r + " is visible with wrong data");
                maxNew = Math.max(maxNew, r.newChunk());
            }
            // The store goes on allocating after every chunk it loaded.
            try {
                PendingRemap next = store.prepare(1L << 30);
                assertTrue(next.newChunk() > maxNew, what + ": reallocated chunk " + next.newChunk());
            } catch (StoreFullException full) {
                // A full COW is a fine state to crash in.
            }
        } finally {
            store.close();
        }
    }

    /**
     * A reused COW: a zeroed header and area 0 (what a new COW needs), stale bytes everywhere
     * after them, so an area that is not zeroed before the one before it fills would load junk.
     */
    private static MemoryDevice staleCow(long bytes, long chunkSectors, long seed) throws IOException {
        MemoryDevice cow = new MemoryDevice("cow", bytes);
        byte[] stale = new byte[(int) (bytes - 2 * chunkSectors * 512)];
        new Random(~seed).nextBytes(stale);
        cow.write(2 * chunkSectors * 512, MemorySegment.ofArray(stale));
        return cow;
    }

    @Test
    void everyAcknowledgedRemapSurvivesAPowerLossAtEveryFlushBoundary() throws IOException {
        int cases = crashMatrix(Commits.KERNEL, "crash-sequences", SEQUENCES);
        Figures.record(
                "crash.persistent-store.cuts",
                cases + " power cuts at flush boundaries over " + SEQUENCES
                        + " commit sequences: every committed remap and its data back, 0 inconsistent");
    }

    /**
     * Deferred commits: nothing changes on disk until a round, and a round is the kernel's round,
     * so a power cut anywhere leaves a valid list; what a sync returned for is there.
     */
    @Test
    void deferredCommitsSurviveAPowerLossAtEveryFlushBoundaryAfterTheirSync() throws IOException {
        int cases = crashMatrix(Commits.DEFERRED, "deferred-crash-sequences", SEQUENCES / 2);
        Figures.record(
                "crash.persistent-store.deferred-cuts",
                cases + " power cuts at flush boundaries over " + SEQUENCES / 2
                        + " deferred commit sequences with syncs: every synced remap and its data back, 0 inconsistent");
    }

    private static int crashMatrix(Commits commits, String seedName, int sequences) throws IOException {
        Random seeds = Seeds.random(seedName);
        int cases = 0;
        for (int s = 0; s < sequences; s++) {
            long seed = seeds.nextLong();
            long chunkSectors = new long[] {1, 1, 2, 8}[s % 4];
            long cowBytes = (48 + new Random(seed).nextInt(120)) * chunkSectors * 512;
            // A clean run counts this sequence's flushes, and must itself reload intact.
            FaultyDevice cleanCow = new FaultyDevice(staleCow(cowBytes, chunkSectors, seed));
            Outcome clean = run(cleanCow, chunkSectors, seed, -1, commits);
            cleanCow.heal();
            verifyAfterReload(cleanCow, chunkSectors, clean, "seed " + seed + " without a crash");
            for (int crashAt = 0; crashAt < clean.flushes(); crashAt++) {
                FaultyDevice cow = new FaultyDevice(staleCow(cowBytes, chunkSectors, seed));
                Outcome outcome = run(cow, chunkSectors, seed, crashAt, commits);
                cow.crash(new Random(seed ^ crashAt)); // the power is off until then: nothing more reaches the media
                cow.heal();
                verifyAfterReload(
                        cow,
                        chunkSectors,
                        outcome,
                        "seed " + seed + " crash at flush " + crashAt + " (chunk " + chunkSectors + ", " + commits
                                + ")");
                cases++;
            }
        }
        System.out.println("persistent store crash matrix (" + commits + "): " + sequences + " sequences, " + cases
                + " power losses at flush boundaries, all consistent");
        assertTrue(cases > sequences, "expected several flush boundaries per sequence");
        return cases;
    }
}
