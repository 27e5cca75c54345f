package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.Seeds;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Power cuts at every flush boundary of seeded sequences of origin and snapshot writes (whole
 * and partial chunks, FUA), FLUSHes, suspends and commit intervals, in each cache mode. At the
 * cut the power goes for both devices: from that flush on every request fails. The COW's
 * unflushed writes, the device's write cache and (in {@code writeback}) the page cache of its
 * data, are lost, once all of them and once a random subset (a partial write-back, pages and
 * sectors torn); its metadata maps are msynced as real mappings are (durable for their range
 * only). The base keeps every write that reached it (the worst case for the order of origin
 * writes). Then, for every sector:
 * <ul>
 *   <li>the snapshot never shows an origin write: an origin write reached the origin only after
 *       the copied-out chunk and its exception were durable;</li>
 *   <li>each view holds its content as of the last completed FLUSH (or FUA write) covering it, or
 *       that of a write issued later: never older, never garbage;</li>
 *   <li>the COW loads, and {@code cow check} finds it clean with the same exceptions.</li>
 * </ul>
 * Every run without a cut also reads both views through the engine after every step (read your
 * writes on every path).
 */
@ExtendWith(Seeds.class)
class CachePowerCutTest {
    private static final int SEQUENCES = Integer.getInteger("dmsnap.tests.cacheCutSequences", 6);
    private static final int STEPS = 40;
    /** With 1-sector chunks the first steps write this many areas' worth (32 entries each) of new chunks. */
    private static final int FULL_AREAS_FIRST = 3;

    private static final long SECTORS = 256; // 32 chunks of 8 sectors
    private static final long ORIGIN_TAGS = 1L << 20;
    private static final ChunkCopier copier = new ChunkCopier(2, 1 << 20);

    @TempDir
    Path dir;

    @AfterAll
    static void closeCopier() throws InterruptedException {
        copier.close();
    }

    /** The content history of one view: per sector, the tags written to it in order (0: the base's). */
    private static final class History {
        final List<List<Long>> tags = new ArrayList<>();
        /** Per sector, the index in {@link #tags} a completed FLUSH or FUA write made durable. */
        final int[] durable = new int[(int) SECTORS];

        History() {
            for (int s = 0; s < SECTORS; s++) {
                tags.add(new ArrayList<>(List.of(0L)));
            }
        }

        void written(long sector, long count, long tag) {
            for (long s = sector; s < sector + count; s++) {
                tags.get((int) s).add(tag);
            }
        }

        long last(int s) {
            return tags.get(s).getLast();
        }

        /** Everything written so far is durable (a completed FLUSH). */
        void flushed() {
            for (int s = 0; s < SECTORS; s++) {
                durable[s] = tags.get(s).size() - 1;
            }
        }

        /** The sectors of a completed FUA write are durable. */
        void flushed(long sector, long count) {
            for (long s = sector; s < sector + count; s++) {
                durable[(int) s] = tags.get((int) s).size() - 1;
            }
        }

        void check(long[] view, String what) {
            for (int s = 0; s < SECTORS; s++) {
                List<Long> h = tags.get(s);
                int at = h.subList(durable[s], h.size()).indexOf(view[s]);
                if (at < 0) {
                    fail(what + ": sector " + s + " holds tag " + view[s] + ", not its durable content "
                            + h.get(durable[s]) + " nor a later write's (history " + h + ")");
                }
            }
        }
    }

    /** Power for both devices: goes at the {@code cutAt}-th flush (never when negative). */
    private static final class Power {
        final int cutAt;
        final AtomicInteger flushes = new AtomicInteger();
        final AtomicBoolean off = new AtomicBoolean();
        /** The COW, told when the power goes (its metadata maps take no more stores that could land). */
        volatile FaultyDevice cow;

        Power(int cutAt) {
            this.cutAt = cutAt;
        }

        boolean fails(FaultyDevice.Request r) {
            if (off.get()) {
                return true;
            }
            if (r.op() == FaultyDevice.Op.FLUSH && flushes.getAndIncrement() == cutAt) {
                goes();
                return true;
            }
            return false;
        }

        /** Called with the lock of the device whose request cut it at most: takes the COW's (never the base's). */
        void goes() {
            off.set(true);
            cow.cutPower();
        }
    }

    /**
     * {@code writes}: origin and snapshot writes issued before the power went, each checked after
     * it; {@code mostDeferred}: in a run without a cut, the most exceptions seen allocated but not
     * durable after a step (measured with 1-sector chunks only, else 0).
     */
    private record Outcome(int flushes, int steps, int writes, long mostDeferred) {}

    /**
     * {@code cuts}: the flush boundaries cut at (each run twice: losing all unflushed writes, then
     * a partial write-back); {@code writesChecked}: the writes their runs checked;
     * {@code mostDeferred}: the most of any run without a cut.
     */
    private record Cuts(int cuts, long writesChecked, long mostDeferred) {}

    /**
     * {@link #SEQUENCES} sequences seeded from {@code seedName}, each run once without a cut to
     * count its flushes, then cut at each of them: once losing the COW's unflushed writes, once
     * keeping a random part of them.
     */
    private Cuts cutAtEveryFlush(CacheMode mode, long chunkSectors, String seedName) throws Exception {
        Random seeds = Seeds.random(seedName);
        int cuts = 0;
        long writesChecked = 0;
        long mostDeferred = 0;
        for (int i = 0; i < SEQUENCES; i++) {
            long seed = seeds.nextLong();
            Outcome clean = run(mode, chunkSectors, seed, -1, null, dir.resolve(i + "-clean"));
            mostDeferred = Math.max(mostDeferred, clean.mostDeferred());
            for (int cut = 0; cut < clean.flushes(); cut++) {
                writesChecked += run(mode, chunkSectors, seed, cut, null, dir.resolve(i + "-cut-" + cut))
                        .writes();
                writesChecked += run(
                                mode,
                                chunkSectors,
                                seed,
                                cut,
                                new Random(seed ^ cut),
                                dir.resolve(i + "-cut-" + cut + "-some"))
                        .writes();
                cuts++;
            }
        }
        return new Cuts(cuts, writesChecked, mostDeferred);
    }

    /**
     * One sequence with chunks of {@code chunkSectors}: {@code seed}'s steps until the power goes;
     * then the checks. {@code writeBack} picks what of the COW's unflushed writes a random partial
     * write-back keeps; null: none. With 8 (4 KiB) chunks a write covers at most one chunk, with 1
     * (32 entries per area) whole writes span up to 32 sectors, so a few of them fill areas, and
     * several full areas wait for a FLUSH in the modes that defer commits.
     */
    private Outcome run(CacheMode mode, long chunkSectors, long seed, int cutAt, Random writeBack, Path where)
            throws Exception {
        Files.createDirectories(where);
        Random random = new Random(seed);
        Power power = new Power(cutAt);
        History snap = new History();
        History origin = new History();
        long nextTag = 1;
        int steps = 0;
        int writes = 0;
        long mostDeferred = 0;
        // The power is switched on after the snapshot is made: its cut points are those of the steps.
        try (CacheRig rig = new CacheRig(where, SECTORS, 1 << 20, chunkSectors, mode, copier)) {
            power.cow = rig.cow;
            rig.fail("base.img", power::fails);
            rig.fail("cow.img", power::fails);
            for (; steps < STEPS && !power.off.get(); steps++) {
                int what = random.nextInt(20);
                if (chunkSectors == 1 && random.nextBoolean()) {
                    what = 0; // mostly snapshot writes: areas fill between the steps that commit
                }
                long chunk = random.nextInt((int) (SECTORS / 8));
                boolean whole = random.nextBoolean();
                long sector = whole ? chunk * 8 : chunk * 8 + random.nextInt(8);
                long count = whole ? 8 : 1 + random.nextInt((int) (chunk * 8 + 8 - sector));
                if (whole && chunkSectors == 1) {
                    count = Math.min(SECTORS - sector, 8L * (1 + random.nextInt(4)));
                }
                boolean fua = random.nextInt(6) == 0;
                if (chunkSectors == 1 && steps < FULL_AREAS_FIRST) {
                    // Whole areas of first-touch snapshot writes first, none with FUA: whatever the
                    // seed, several full areas then wait at once in the modes that defer commits
                    // (seed 6451258700609696307 alone reached 63 and 51 exceptions at most).
                    what = 0;
                    sector = steps * 32L;
                    count = 32;
                    fua = false;
                }
                try {
                    if (what < 15) {
                        writes++;
                    }
                    if (what < 9) {
                        long tag = nextTag++;
                        snap.written(sector, count, tag);
                        rig.write("snap", sector, count, tag, fua);
                        if (fua) {
                            snap.flushed(sector, count);
                        }
                    } else if (what < 15) {
                        long tag = ORIGIN_TAGS + nextTag++;
                        origin.written(sector, count, tag);
                        rig.write("origin", sector, count, tag, fua);
                        if (fua) {
                            origin.flushed(sector, count);
                        }
                    } else if (what < 17) {
                        rig.flush("snap");
                        snap.flushed();
                    } else if (what < 18) {
                        rig.flush("origin");
                        origin.flushed();
                    } else if (what < 19) {
                        rig.device("snap").suspend(); // commits; a failure only invalidates
                        rig.device("snap").resume();
                    } else {
                        rig.timer.intervalPasses();
                    }
                } catch (IOException e) {
                    if (!power.off.get()) {
                        throw e;
                    }
                }
                if (!power.off.get() && cutAt < 0) {
                    checkLive(rig, snap, origin, "seed " + seed + " step " + steps);
                    if (chunkSectors == 1) {
                        mostDeferred = Math.max(
                                mostDeferred,
                                allocated(rig) - rig.durableRemaps().size());
                    }
                }
            }
            // The power is off (or the sequence ended: then it goes now): what reached the media stays.
            power.goes();
            rig.fail("base.img", null);
            // The COW stays off: the engine's threads live on after the cut (a copier that leads a
            // commit round also runs the rounds asked for while it leads, such as the interval's,
            // after the test has moved on), and a round that ran after crash() below would write
            // areas whose data the crash took: media no real power cut leaves.
            rig.base.flush(); // every origin write that reached the base survives: the worst case
            if (writeBack == null) {
                rig.cow.crash(); // the COW loses everything not flushed, page cache included
            } else {
                rig.cow.crash(writeBack); // or keeps some of it
            }
            String what = mode + " seed " + seed + (cutAt < 0 ? " at the end" : " cut at flush " + cutAt)
                    + (writeBack == null ? "" : ", partial write-back");
            rig.checkCowMedia(what);
            long[] snapshotView;
            try {
                snapshotView = rig.snapshotAfterPowerCut();
            } catch (AssertionError garbage) {
                throw new AssertionError(what + ": " + garbage.getMessage(), garbage);
            }
            for (int s = 0; s < SECTORS; s++) {
                if (snapshotView[s] >= ORIGIN_TAGS) {
                    fail(what + ": the snapshot shows origin write " + snapshotView[s] + " at sector " + s);
                }
            }
            snap.check(snapshotView, what + ", snapshot");
            origin.check(rig.originAfterPowerCut(), what + ", origin");
            rig.fail("cow.img", q -> true); // still off: the rig's close must not write the COW again
        }
        return new Outcome(power.flushes.get(), steps, writes, mostDeferred);
    }

    /**
     * The exceptions the snapshot has allocated, from its status ({@code allocated/total
     * metadata} in sectors: with 1-sector chunks the next free chunk, area k at chunk 1 + 33 k).
     */
    private static long allocated(CacheRig rig) throws Exception {
        String line = String.join("", rig.device("snap").statusLines(dmsnap.target.StatusType.INFO, false));
        String[] words = line.split(" ");
        long nextFree = Long.parseLong(words[3].substring(0, words[3].indexOf('/')));
        long areas = (nextFree - 2) / 33 + 1;
        return nextFree - 1 - areas;
    }

    /** Read your writes: both views, read through the engine, are the last writes. */
    private static void checkLive(CacheRig rig, History snap, History origin, String what) throws Exception {
        long[] expectedSnap = new long[(int) SECTORS];
        long[] expectedOrigin = new long[(int) SECTORS];
        for (int s = 0; s < SECTORS; s++) {
            expectedSnap[s] = snap.last(s);
            expectedOrigin[s] = origin.last(s);
        }
        assertArrayEquals(expectedSnap, rig.read("snap"), what + ": the snapshot reads its writes");
        assertArrayEquals(expectedOrigin, rig.read("origin"), what + ": the origin reads its writes");
    }

    @ParameterizedTest
    @EnumSource(CacheMode.class)
    void aPowerCutAtAnyFlushBoundaryKeepsWhatFlushesCoveredAndNeverShowsAnOriginWriteInTheSnapshot(CacheMode mode)
            throws Exception {
        Cuts made = cutAtEveryFlush(mode, 8, "cache-power-cut-" + mode.text());
        assertTrue(made.cuts() > SEQUENCES, "several flush boundaries per sequence");
        Figures.record(
                "crash.cache-modes." + mode.text() + ".cuts",
                made.cuts() + " power cuts at flush boundaries over " + SEQUENCES + " sequences of " + STEPS
                        + " steps, each x {lose all unflushed" + (mode.usesPageCache() ? " (page cache included)" : "")
                        + ", random partial write-back}: " + made.writesChecked()
                        + " writes checked, no origin write in the snapshot, every flushed write back, cow check clean");
    }

    @ParameterizedTest
    @EnumSource(CacheMode.class)
    void aPowerCutAtAnyFlushBoundaryWithSeveralFullAreasPendingKeepsWhatFlushesCovered(CacheMode mode)
            throws Exception {
        Cuts made = cutAtEveryFlush(mode, 1, "cache-power-cut-areas-" + mode.text());
        long mostDeferred = made.mostDeferred();
        if (mode.defersCommits()) {
            assertTrue(mostDeferred >= 64, "two full areas (32 entries each) waited at once: " + mostDeferred);
        } else {
            assertEquals(0, mostDeferred, "directsync: every exception durable before its reply");
        }
        Figures.record(
                "crash.cache-modes." + mode.text() + ".area-cuts",
                made.cuts() + " power cuts at flush boundaries over " + SEQUENCES
                        + " sequences with 1-sector chunks (up to " + mostDeferred + " exceptions, " + mostDeferred / 32
                        + " full areas, waiting for a FLUSH): " + made.writesChecked() + " writes checked");
    }
}
