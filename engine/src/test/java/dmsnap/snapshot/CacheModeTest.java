package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The cache modes on a snapshot (DESIGN.md, "When a write is acknowledged"): in {@code none} a
 * snapshot write is acknowledged with its exception visible but not durable, and each trigger
 * commits it (FLUSH, FUA, suspend, handover, remove, the commit interval, an origin
 * write to its chunk); {@code directsync} is the kernel's rule. "Durable" is what a power cut
 * would leave: the COW's media, which only flushes reach. No timing: the interval is run by hand.
 */
class CacheModeTest {
    private static final ChunkCopier copier = new ChunkCopier(2, 1 << 20);

    @TempDir
    Path dir;

    @AfterAll
    static void closeCopier() throws InterruptedException {
        copier.close();
    }

    /** 64 chunks of 4 KiB (chunk 8), room for all of them. */
    private CacheRig rig(CacheMode mode) throws Exception {
        return new CacheRig(dir, 512, 1 << 20, 8, mode, copier);
    }

    @Test
    void noneAcknowledgesASnapshotWriteBeforeItsExceptionIsDurableAndReadsItBack() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false); // chunk 2, whole
            r.write("snap", 41, 2, 2, false); // chunk 5, partial: copied from the origin first
            assertEquals(Map.of(), r.durableRemaps(), "nothing committed yet");
            long[] snap = r.read("snap");
            for (int s = 0; s < 64; s++) {
                long expected = s >= 16 && s < 24 ? 1 : s == 41 || s == 42 ? 2 : 0;
                assertEquals(expected, snap[s], "sector " + s + " reads what was written");
            }
            assertEquals(
                    "0 512 snapshot 32/2048 16",
                    String.join("\n", r.device("snap").statusLines(dmsnap.target.StatusType.INFO, false)),
                    "allocated chunks count at once, as the kernel's");
            assertEquals(0, r.read("origin")[16], "the origin is untouched");
        }
    }

    @Test
    void directsyncAcknowledgesOnlyDurableExceptions() throws Exception {
        try (CacheRig r = rig(CacheMode.DIRECTSYNC)) {
            r.write("snap", 16, 8, 1, false);
            assertEquals(Map.of(2L, 2L), r.durableRemaps());
            assertEquals(0, r.timer.scheduled(), "nothing is deferred");
        }
    }

    @Test
    void aFlushCommitsEveryExceptionMadeBeforeIt() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.write("snap", 0, 24, 3, false); // chunks 0..2: two new exceptions and a mapped chunk
            r.flush("snap");
            assertEquals(Set.of(0L, 1L, 2L), r.durableRemaps().keySet());
            long[] afterCut = r.snapshotAfterPowerCut();
            for (int s = 0; s < 24; s++) {
                assertEquals(3, afterCut[s], "sector " + s + ": the data replied before the FLUSH");
            }
        }
    }

    @Test
    void aFlushOnTheOriginDeviceDoesNotCommitTheSnapshot() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.flush("origin");
            assertEquals(Map.of(), r.durableRemaps(), "a FLUSH promises the writes of its own export");
        }
    }

    @Test
    void aFuaWriteIsDurableWhenItCompletes() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, true);
            assertEquals(Map.of(2L, 2L), r.durableRemaps());
            r.write("snap", 17, 1, 4, true); // into the mapped chunk now
            assertEquals(4, r.snapshotAfterPowerCut()[17]);
        }
    }

    @ParameterizedTest
    @EnumSource(
            value = CacheMode.class,
            names = {"NONE", "WRITEBACK"})
    void fullAreasWaitForAFlushAsAPartialOneDoes(CacheMode mode) throws Exception {
        // chunk 1 sector: 32 entries per area; writes of 16 sectors (16 exceptions) fill areas 0-2.
        try (CacheRig r = new CacheRig(dir, 128, 256 << 10, 1, mode, copier)) {
            long flushes = r.cow.flushes();
            for (int s = 0; s < 112; s += 16) {
                r.write("snap", s, 16, 1 + s, false);
            }
            assertEquals(0, r.durableRemaps().size(), "no area committed when it filled");
            assertEquals(flushes, r.cow.flushes(), "nothing flushed");
            assertEquals(
                    "0 128 snapshot 117/512 5",
                    String.join("\n", r.device("snap").statusLines(dmsnap.target.StatusType.INFO, false)),
                    "the kernel's counts: 112 chunks and 3 areas past area 0, the header");
            long[] snap = r.read("snap");
            for (int s = 0; s < 112; s++) {
                assertEquals(1 + s / 16 * 16, snap[s], "sector " + s + " reads what was written");
            }
            r.flush("snap");
            assertEquals(112, r.durableRemaps().size(), "the FLUSH committed the four areas");
            assertEquals(flushes + 2, r.cow.flushes(), "one round: the data flush, then the four areas' flush");
            long[] afterCut = r.snapshotAfterPowerCut();
            for (int s = 0; s < 112; s++) {
                assertEquals(1 + s / 16 * 16, afterCut[s], "sector " + s + ": the data replied before the FLUSH");
            }
        }
    }

    @Test
    void directsyncCommitsEveryWriteThatFillsAreasBeforeItsReply() throws Exception {
        try (CacheRig r = new CacheRig(dir, 128, 256 << 10, 1, CacheMode.DIRECTSYNC, copier)) {
            for (int s = 0; s < 112; s += 16) {
                r.write("snap", s, 16, 1 + s, false);
                assertEquals(s + 16, r.durableRemaps().size(), "the kernel's rule: durable before the reply");
            }
        }
    }

    @Test
    void suspendCommitsAndResumeGoesOn() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.device("snap").suspend();
            assertEquals(Map.of(2L, 2L), r.durableRemaps());
            r.device("snap").resume();
            r.write("snap", 24, 8, 1, false);
            assertEquals(1, r.durableRemaps().size());
        }
    }

    @Test
    void aHandoverFindsEveryExceptionCommittedAndTheDestinationReadsThem() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.write("snap", 33, 1, 2, false);
            long[] before = r.read("snap");
            // snapshot refresh: reload the same table, suspend (the source commits), resume (handover)
            r.dm.load("snap", TableParser.parse(r.snapshotTable));
            r.device("snap").suspend();
            assertEquals(Set.of(2L, 4L), r.durableRemaps().keySet());
            r.device("snap").resume();
            assertArrayEquals(before, r.read("snap"));
            r.write("snap", 48, 8, 5, false);
            r.flush("snap");
            assertEquals(Set.of(2L, 4L, 6L), r.durableRemaps().keySet(), "the destination defers and commits too");
        }
    }

    @Test
    void removeCommits() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.dm.remove("snap", false);
            assertEquals(Map.of(2L, 2L), r.durableRemaps());
        }
    }

    @Test
    void theCommitIntervalCommitsWhatNoFlushDid() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false);
            r.write("snap", 24, 8, 1, false);
            assertEquals(1, r.timer.scheduled(), "one interval runs for both");
            r.timer.intervalPasses();
            assertEquals(Set.of(2L, 3L), r.durableRemaps().keySet());
            r.write("snap", 32, 8, 1, false);
            assertEquals(1, r.timer.scheduled(), "a later exception starts the next interval");
            r.timer.intervalPasses();
            assertEquals(3, r.durableRemaps().size());
            r.timer.intervalPasses(); // nothing scheduled, nothing deferred: nothing happens
        }
    }

    @Test
    void anOriginWriteToADeferredChunkWaitsUntilItsExceptionIsDurable() throws Exception {
        try (CacheRig r = rig(CacheMode.NONE)) {
            r.write("snap", 16, 8, 1, false); // chunk 2 deferred
            r.write("origin", 16, 8, 9, false);
            int originWrite =
                    r.lastIndex("base.img", q -> q.op() == FaultyDevice.Op.WRITE && q.offsetBytes() == 16 * 512);
            int areaFlush = r.lastIndex("cow.img", q -> q.op() == FaultyDevice.Op.FLUSH);
            assertTrue(originWrite > areaFlush && areaFlush >= 0, "the commit's flush came before the origin write");
            assertEquals(Map.of(2L, 2L), r.durableRemaps());
            assertEquals(1, r.snapshotAfterPowerCut()[16], "the snapshot shows its own write, never the origin's");
        }
    }

    @Test
    void anOriginWriteToAChunkWithoutExceptionCopiesOutAndCommitsAtOnceInEveryMode() throws Exception {
        for (CacheMode mode : CacheMode.values()) {
            try (CacheRig r = new CacheRig(
                    java.nio.file.Files.createDirectories(dir.resolve(mode.text())), 512, 1 << 20, 8, mode, copier)) {
                r.write("snap", 40, 8, 1, false); // deferred in none and writeback
                r.write("origin", 16, 8, 9, false);
                assertTrue(r.durableRemaps().containsKey(2L), mode + ": the copy-out is durable");
                assertTrue(r.durableRemaps().containsKey(5L), mode + ": the deferred one before it went along");
                assertEquals(0, r.snapshotAfterPowerCut()[16], mode.text());
            }
        }
    }

    /** In writeback a COW write's error comes here too: at the FLUSH that writes the page cache back. */
    @ParameterizedTest
    @EnumSource(
            value = CacheMode.class,
            names = {"NONE", "WRITEBACK"})
    void aCommitThatFailsInvalidatesTheSnapshotAndTheFlushReportsIt(CacheMode mode) throws Exception {
        try (CacheRig r = rig(mode)) {
            r.write("snap", 16, 8, 1, false);
            r.fail("cow.img", q -> q.op() == FaultyDevice.Op.FLUSH);
            assertThrows(IOException.class, () -> r.flush("snap"));
            r.fail("cow.img", null);
            assertEquals(
                    List.of("0 512 snapshot Invalid"),
                    r.device("snap").statusLines(dmsnap.target.StatusType.INFO, false));
            r.flush("snap"); // a FLUSH of an invalid snapshot succeeds, as the kernel's
            assertThrows(IOException.class, () -> r.read("snap"));
        }
    }

    @ParameterizedTest
    @EnumSource(CacheMode.class)
    void writebackPutsTheCowsDataAndOriginReadsThroughThePageCacheAndTheOthersDoNot(CacheMode mode) throws Exception {
        try (CacheRig r = rig(mode)) {
            Snapshot s = ((SnapshotTarget) r.device("snap").liveTargets().getFirst()).snapshot();
            assertEquals(mode, s.cacheMode());
            // The rig's devices have no page cache of their own: check the choice on a real one.
            if (mode.usesPageCache()) {
                assertSame(s.cowHandle().device().buffered(), s.cowData());
                assertSame(s.originHandle().device().buffered(), s.originData());
            } else {
                assertSame(s.cowHandle().device(), s.cowData());
                assertSame(s.originHandle().device(), s.originData());
            }
        }
    }

    /**
     * In writeback a run of new chunks of at least PageCacheBypass.DIRECT_RUN_BYTES goes to the
     * COW device itself, not its page cache; shorter runs and rewrites go through the page cache.
     * Every write reads back at once, and the flush makes them all durable.
     */
    @Test
    void writebackWritesLongRunsOfNewChunksAroundThePageCache() throws Exception {
        assertEquals(256 << 10, PageCacheBypass.DIRECT_RUN_BYTES, "64 chunks of 4 KiB below");
        try (CacheRig r = new CacheRig(dir, 2048, 4 << 20, 8, CacheMode.WRITEBACK, copier)) {
            int dirty = r.cow.dirtyPageCacheWrites();
            long unflushed = r.cow.unflushedWrites();
            r.write("snap", 0, 8, 1, false); // one new chunk
            assertEquals(dirty + 1, r.cow.dirtyPageCacheWrites(), "one new chunk: through the page cache");
            r.write("snap", 8, 504, 2, false); // 63 new chunks, one short of the run
            assertEquals(dirty + 2, r.cow.dirtyPageCacheWrites(), "63 new chunks: through the page cache");
            r.write("snap", 512, 512, 3, false); // 64 new chunks
            assertEquals(dirty + 2, r.cow.dirtyPageCacheWrites(), "64 new chunks: around the page cache");
            assertEquals(unflushed + 3, r.cow.unflushedWrites(), "and into the device's cache, as in none");
            r.write("snap", 520, 8, 4, false); // a chunk of that run, rewritten
            assertEquals(dirty + 3, r.cow.dirtyPageCacheWrites(), "a rewrite: through the page cache");
            long[] expected = new long[2048];
            java.util.Arrays.fill(expected, 0, 8, 1);
            java.util.Arrays.fill(expected, 8, 512, 2);
            java.util.Arrays.fill(expected, 512, 1024, 3);
            java.util.Arrays.fill(expected, 520, 528, 4);
            assertArrayEquals(expected, r.read("snap"), "every write reads back before the flush");
            assertEquals(Map.of(), r.durableRemaps(), "nothing committed before the flush");
            r.flush("snap");
            assertEquals(128, r.durableRemaps().size());
            assertArrayEquals(expected, r.snapshotAfterPowerCut(), "the flush made every write durable");
            r.checkCowMedia("after the flush");
        }
    }

    @Test
    void writebackOnAFileReadsAndWritesTheCowThroughItsPageCacheView() throws Exception {
        try (dmsnap.engine.testing.SnapshotEngine e = new dmsnap.engine.testing.SnapshotEngine(dir, 1 << 20, 1 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + e.sectors + " snapshot-origin " + e.base));
            e.dm.get("origin").suspend();
            e.dm.create("snap", null, TableParser.parse(e.snapshotTable("P", 8)), false, CacheMode.WRITEBACK);
            e.dm.get("origin").resume();
            Snapshot s = ((SnapshotTarget) e.dm.get("snap").liveTargets().getFirst()).snapshot();
            assertNotSame(s.cowHandle().device(), s.cowData(), "a second descriptor, without O_DIRECT");
            assertTrue(e.dm.get("snap").readsThroughPageCache(), "a large read's pieces are then read in order");
            e.write("snap", 16, 8, 0x42);
            assertEquals(0x42, e.readByte("snap", 16));
            e.dm.get("snap").submit(dmsnap.target.IoRequest.flush());
            e.dm.remove("snap", false);
            e.dm.get("origin").suspend();
            e.dm.create("snap", null, TableParser.parse(e.snapshotTable("P", 8)), false, CacheMode.DIRECTSYNC);
            e.dm.get("origin").resume();
            assertEquals(0x42, e.readByte("snap", 16), "what writeback wrote, read again with O_DIRECT");
            assertFalse(e.dm.get("snap").readsThroughPageCache());
        }
    }

    @Test
    void writebackReadsTheOriginThroughItsPageCacheAndNeverSeesAnOverwrittenChunk() throws Exception {
        try (dmsnap.engine.testing.SnapshotEngine e = new dmsnap.engine.testing.SnapshotEngine(dir, 1 << 20, 1 << 20)) {
            originAndSnapshot(e, "P", CacheMode.WRITEBACK);
            Snapshot s = ((SnapshotTarget) e.dm.get("snap").liveTargets().getFirst()).snapshot();
            assertNotSame(s.originHandle().device(), s.originData(), "a second descriptor, without O_DIRECT");
            assertFalse(e.dm.get("origin").readsThroughPageCache(), "the origin's own table is directsync");
            byte before = e.readByte("snap", 16); // the origin's chunk, now in the page cache
            assertEquals(before, e.readByte("origin", 16));
            e.write("origin", 16, 8, 0x5a); // O_DIRECT, after copying the chunk out to snap
            assertEquals(before, e.readByte("snap", 16), "snap keeps the chunk as it was");
            e.write("snap", 64, 1, 0x11); // a partial chunk: the copy reads the origin's cached chunk
            assertEquals(0x11, e.readByte("snap", 64));
            assertEquals(e.readByte("origin", 65), e.readByte("snap", 65));
            java.nio.file.Path cow2 = java.nio.file.Files.write(dir.resolve("snap2.cow"), new byte[1 << 20]);
            e.dm.get("origin").suspend();
            e.dm.create(
                    "snap2",
                    null,
                    TableParser.parse(e.snapshotTable("P", 8).replace(e.cow.toString(), cow2.toString())),
                    false,
                    CacheMode.WRITEBACK);
            e.dm.get("origin").resume();
            assertEquals(0x5a, e.readByte("snap2", 16), "the origin write dropped the cached pages");
        }
    }

    @ParameterizedTest
    @EnumSource(CacheMode.class)
    void aWritebackOriginReadsThroughItsPageCacheAndReadsBackItsOwnWrites(CacheMode mode) throws Exception {
        try (dmsnap.engine.testing.SnapshotEngine e = new dmsnap.engine.testing.SnapshotEngine(dir, 1 << 20, 1 << 20)) {
            e.dm.create(
                    "origin", null, TableParser.parse("0 " + e.sectors + " snapshot-origin " + e.base), false, mode);
            OriginTarget origin =
                    (OriginTarget) e.dm.get("origin").liveTargets().getFirst();
            dmsnap.store.device.Device device = origin.originHandle().device();
            assertSame(mode.usesPageCache() ? device.buffered() : device, origin.reads());
            byte before = e.readByte("origin", 16); // now in the page cache in writeback
            e.write("origin", 16, 8, 0x33);
            assertEquals(0x33, e.readByte("origin", 16), "the O_DIRECT write dropped the cached page");
            assertNotEquals(before, e.readByte("origin", 16));
        }
    }

    /** origin + snapshot the LVM way over files, the snapshot in {@code mode}. */
    private static void originAndSnapshot(dmsnap.engine.testing.SnapshotEngine e, String store, CacheMode mode)
            throws Exception {
        e.dm.create("origin", null, TableParser.parse("0 " + e.sectors + " snapshot-origin " + e.base));
        e.dm.get("origin").suspend();
        e.dm.create("snap", null, TableParser.parse(e.snapshotTable(store, 8)), false, mode);
        e.dm.get("origin").resume();
    }

    @Test
    void aMergeStartedAfterDeferredWritesMergesThemAll() throws Exception {
        try (dmsnap.engine.testing.SnapshotEngine e = new dmsnap.engine.testing.SnapshotEngine(dir, 1 << 20, 1 << 20)) {
            originAndSnapshot(e, "P", CacheMode.NONE);
            e.write("origin", 0, 8, 0x11); // a copy-out, committed at once
            e.write("snap", 16, 8, 0x22); // deferred
            e.write("snap", 33, 1, 0x33); // deferred, partial
            String snapshotView = e.sha("snap");
            e.startMerge("P", 8); // the snapshot's suspend commits; the merge takes over its store
            MergeProbes.awaitMergeStopped(e);
            assertEquals(snapshotView, e.sha("origin"), "the origin is the snapshot, deferred writes included");
            assertEquals(0x22, e.readByte("origin", 16));
            assertEquals(0x33, e.readByte("origin", 33));
            assertEquals(SnapshotEngine.original(0), e.readByte("origin", 0));
        }
    }

    @Test
    void aFullCowOverflowsOrInvalidatesAsBeforeAndTheDeferredExceptionsBeforeItStay() throws Exception {
        // chunk 8 on a COW of 5 chunks: header, area 0, room for 3 data chunks (the 4th does not fit).
        for (String store : List.of("PO", "P")) {
            Path where = java.nio.file.Files.createDirectories(dir.resolve(store));
            try (CacheRig r = new CacheRig(where, 512, 5 * 4096, 8, CacheMode.NONE, copier, store)) {
                r.write("snap", 0, 8, 1, false);
                r.write("snap", 8, 8, 2, false);
                r.write("snap", 16, 8, 3, false);
                assertThrows(IOException.class, () -> r.write("snap", 24, 8, 4, false), store);
                String status = String.join("", r.device("snap").statusLines(dmsnap.target.StatusType.INFO, false));
                if (store.equals("PO")) {
                    assertEquals("0 512 snapshot Overflow", status);
                    assertEquals(2, r.read("snap")[8], "an overflowed snapshot still reads");
                    r.flush("snap");
                    assertEquals(Set.of(0L, 1L, 2L), r.durableRemaps().keySet(), "committed at the FLUSH");
                } else {
                    assertEquals("0 512 snapshot Invalid", status);
                    assertTrue(r.durablyInvalid(), "the header says valid=0, as the kernel's");
                }
            }
        }
    }
}
