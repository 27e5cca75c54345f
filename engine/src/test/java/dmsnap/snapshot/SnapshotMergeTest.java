package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static dmsnap.snapshot.MergeProbes.merging;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.StatusText;
import dmsnap.target.TargetStatus;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** snapshot-merge, spec 9 and checklist 72-85, on files through the engine. */
class SnapshotMergeTest {
    private static final long BASE = 8 << 20; // 16384 sectors, 2048 chunks of 8
    private static final long COW = 4 << 20; // 8192 sectors
    /** How long a test waits for what must happen (a busy machine is slow, not stuck). */
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(60);

    @TempDir
    Path dir;

    /** Backing devices with fault injection; each device by its file name. */
    static final class Faults {
        final Map<String, FaultyDevice> byName = new ConcurrentHashMap<>();

        BackingDevices devices() {
            return new BackingDevices(real -> {
                FaultyDevice f = new FaultyDevice(FileDevice.open(real, FileDevice.Option.BUFFERED));
                byName.put(real.getFileName().toString(), f);
                return f;
            });
        }

        FaultyDevice get(String file) {
            return byName.get(file);
        }
    }

    /** Origin writes to scattered and consecutive chunks, and snapshot writes: the snapshot has runs and singles. */
    private static void populate(SnapshotEngine e) throws Exception {
        e.write("origin", 0, 32, 0x11); // chunks 0-3: a run of 4
        e.write("origin", 40, 8, 0x12); // chunk 5
        e.write("origin", 800, 32, 0x13); // chunks 100-103
        e.write("origin", 16376, 8, 0x14); // the last chunk
        e.write("snap", 8000, 8, 0x21); // chunk 1000, a full-chunk snapshot write
        e.write("snap", 8009, 1, 0x22); // chunk 1001, partial: copied from the origin first (a run with 1000)
        e.write("origin", 4, 4, 0x15); // chunk 0 again: no new exception
    }

    private static void awaitStatus(SnapshotEngine e, String expected) throws Exception {
        long deadline = System.nanoTime() + WAIT_NANOS;
        while (!e.status("origin", false).equals(expected)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("status stayed " + e.status("origin", false) + ", expected " + expected);
            }
            Thread.sleep(1);
        }
    }

    private static byte[] area0(SnapshotEngine e) throws IOException {
        return Arrays.copyOfRange(Files.readAllBytes(e.cow), 4096, 8192);
    }

    private static boolean fails(SnapshotEngine e, String device, IoRequest io) {
        try {
            e.dm.get(device).submit(io);
            return false;
        } catch (IOException x) {
            return true;
        } catch (Exception x) {
            throw new AssertionError(x);
        }
    }

    @Test
    void aMergeRollsTheOriginBackToTheSnapshotAndEndsWithTheKernelsFinalStatus() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            populate(e);
            assertEquals("0 16384 snapshot 112/8192 16", e.status("snap", false));
            String snapshotView = e.sha("snap");
            assertNotEquals(snapshotView, e.sha("origin"));
            e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8)));
            assertEquals(
                    "0 16384 snapshot-merge 0/8192 0", e.status("origin", true), "a destination before its resume");
            assertEquals(
                    "0 16384 snapshot-merge " + e.base.toRealPath() + " " + e.cow.toRealPath() + " P 0",
                    e.table("origin", true));
            e.dm.get("origin").suspend();
            e.dm.get("snap").suspend();
            e.dm.get("origin").resume();
            e.dm.get("snap").resume();
            assertTrue(fails(e, "snap", IoRequest.read(0, e.buffer(8))), "the old snapshot device errors reads");
            assertTrue(fails(e, "snap", IoRequest.write(0, e.buffer(8), false)), "and writes");
            assertEquals("0 16384 snapshot Invalid", e.status("snap", false));
            assertEquals(snapshotView, e.sha("origin"), "the merging device reads what the snapshot read");
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
            assertEquals(
                    "0 16384 snapshot-merge " + e.base.toRealPath() + " " + e.cow.toRealPath() + " P 8",
                    e.table("origin", false));
            assertEquals(snapshotView, e.sha("origin"));
            assertEquals(snapshotView, SnapshotEngine.sha(e.base), "the origin itself now holds the snapshot");
            assertArrayEquals(new byte[4096], area0(e), "area 0 is all zeroes");
        }
    }

    @Test
    void statusShrinksStepByStepWithTheMostRecentExceptionsMergedFirst() throws Exception {
        Faults faults = new Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            populate(e);
            List<String> statuses = new CopyOnWriteArrayList<>();
            List<Long> originWrites = new CopyOnWriteArrayList<>();
            AtomicBoolean merging = new AtomicBoolean();
            faults.get("base.img").failWhen(r -> {
                if (merging.get() && r.op() == FaultyDevice.Op.WRITE) {
                    originWrites.add(r.offsetBytes() / 4096);
                }
                if (merging.get() && r.op() == FaultyDevice.Op.FLUSH) {
                    try {
                        statuses.add(e.status("origin", false));
                    } catch (Exception x) {
                        throw new AssertionError(x);
                    }
                }
                return false;
            });
            merging.set(true);
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            merging.set(false);
            // The exception list: 0-3 -> 2-5, 5 -> 6, 100-103 -> 7-10, 2047 -> 11, 1000-1001 -> 12-13.
            assertEquals(
                    List.of(1000L, 2047L, 100L, 5L, 0L),
                    originWrites,
                    "runs from the tail of the list, the most recently allocated first, each one copy");
            // At each origin flush (before the commit): the status after the step before.
            assertEquals(
                    List.of(
                            "0 16384 snapshot-merge 112/8192 16",
                            "0 16384 snapshot-merge 96/8192 16",
                            "0 16384 snapshot-merge 88/8192 16",
                            "0 16384 snapshot-merge 56/8192 16",
                            "0 16384 snapshot-merge 48/8192 16"),
                    statuses);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
        }
    }

    @Test
    void theKernelsRefusals() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            Path cowB = dir.resolve("cowB.img");
            Files.write(cowB, new byte[(int) COW]);
            String snapB = "0 16384 snapshot " + e.base + " " + cowB + " P 8";
            e.dm.get("origin").suspend();
            e.dm.create("snapB", null, TableParser.parse(snapB));
            e.dm.get("origin").resume();
            e.write("origin", 0, 8, 1);
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            TableLoadException again = assertThrows(
                    TableLoadException.class, () -> e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8))));
            assertEquals("A snapshot is already merging.", again.getMessage(), "a reload of the merging device");
            e.dm.create("other", null, null);
            TableLoadException second = assertThrows(
                    TableLoadException.class,
                    () -> e.dm.load(
                            "other", TableParser.parse("0 16384 snapshot-merge " + e.base + " " + cowB + " P 8")));
            assertEquals(
                    "A snapshot is already merging.", second.getMessage(), "merging a second snapshot of the origin");
            assertEquals("snapshot-merge", second.target());
        }
    }

    @Test
    void transientStoresCannotMerge() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("N", 8);
            TableLoadException live = assertThrows(
                    TableLoadException.class, () -> e.dm.load("origin", TableParser.parse(e.mergeTable("N", 8))));
            assertEquals("Snapshot exception store does not support snapshot-merge.", live.getMessage());
            e.dm.remove("snap", false);
            TableLoadException fresh = assertThrows(
                    TableLoadException.class, () -> e.dm.load("origin", TableParser.parse(e.mergeTable("N", 8))));
            assertEquals(
                    "Snapshot exception store does not support snapshot-merge.",
                    fresh.getMessage(),
                    "refused at load without a handover too (spec 1.4)");
            TableLoadException args = assertThrows(
                    TableLoadException.class,
                    () -> e.dm.load(
                            "origin", TableParser.parse("0 16384 snapshot-merge " + e.base + " " + e.cow + " P")));
            assertEquals("requires 4 or more arguments", args.getMessage(), "the snapshot grammar");
        }
    }

    @Test
    void suspendStopsTheMergeAndResumeContinuesIt() throws Exception {
        Faults faults = new Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 200; c += 2) {
                e.write("origin", c * 8L, 8, c); // 100 single-chunk runs
            }
            String view = e.sha("snap");
            try (GatedMerge m = startGatedMerge(e, faults.get("cow.img"), 5)) {
                Merger merger = m.merger();
                m.gate().awaitParked(1);
                awaitAtMost(e, 816 - 8 * 5);
                assertTrue(merger.isRunning(), "the merge is under way, parked at the gate");
                stopWhileParked(merger, m.gate(), () -> e.dm.get("origin").suspend());
                String stopped = e.status("origin", false);
                // The merge's progress as values: allocated shrinks towards the metadata sectors.
                SnapshotStatus.Usage progress = usage(e);
                assertEquals(stopped, "0 16384 snapshot-merge " + StatusText.info(progress));
                assertEquals(8192, progress.totalSectors());
                assertEquals(16, progress.metadataSectors());
                assertTrue(progress.allocatedSectors() > 16 && progress.allocatedSectors() <= 816 - 8 * 5, stopped);
                assertEquals(0, progress.dataSectors() % 8, "whole chunks left");
                long steps = merger.steps();
                // The loop has ended (isRunning is cleared last): nothing can change the status until a resume.
                assertFalse(merger.isRunning(), "no merge while suspended");
                assertNotEquals("0 16384 snapshot-merge 16/8192 16", stopped, "stopped in the middle");
                assertTrue(steps >= 5 && steps < 100, steps + " steps");
                assertEquals(stopped, e.status("origin", false), "status does not change while suspended");
                m.gate().open();
                e.dm.get("origin").resume();
                awaitMergeStopped(e);
                assertTrue(merger.steps() > steps, "the resume continued the merge");
                assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
                assertEquals(view, e.sha("origin"));
            }
        }
    }

    @Test
    void aFreshActivationContinuesAnInterruptedMerge() throws Exception {
        Faults faults = new Faults();
        String view;
        String partly;
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 300; c += 3) {
                e.write("origin", c * 8L, 8, c);
            }
            view = e.sha("snap");
            try (GatedMerge m = startGatedMerge(e, faults.get("cow.img"), 10)) {
                Merger merger = m.merger();
                m.gate().awaitParked(1);
                awaitAtMost(e, 816 - 8 * 10);
                stopWhileParked(merger, m.gate(), () -> e.dm.remove("origin", false)); // deactivate in the middle
                assertTrue(merger.steps() >= 10 && merger.steps() < 100, merger.steps() + " steps");
                partly = SnapshotEngine.sha(e.base);
            }
        }
        try (SnapshotEngine e = reopen()) {
            assertNotEquals(view, partly, "the merge was interrupted");
            e.dm.create("origin", null, TableParser.parse(e.mergeTable("P", 8)));
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
            assertEquals(view, e.sha("origin"));
            assertEquals(view, SnapshotEngine.sha(e.base));
        }
    }

    /** An engine over the files of {@link #dir} as they are (no new content). */
    private SnapshotEngine reopen() throws IOException {
        return new SnapshotEngine(dir, dir.resolve("base.img"), dir.resolve("cow.img"), new BackingDevices());
    }

    @Test
    void writesDuringTheMergeAreKeptWhereverTheyLand() throws Exception {
        Faults faults = new Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 400; c += 2) {
                e.write("origin", c * 8L, 8, 0x40);
            }
            try (GatedMerge m = startGatedMerge(e, faults.get("cow.img"), 5)) {
                Merger merger = m.merger();
                FaultyDevice.Gate gate = m.gate();
                gate.awaitParked(1);
                awaitAtMost(e, 1616 - 8 * 5);
                // Chunks still on the COW (merged last: the lowest), a chunk without exception, and a
                // partial write into an exception chunk.
                e.write("origin", 0, 8, 0x51);
                e.write("origin", 8, 8, 0x52);
                e.write("origin", 19, 2, 0x53);
                e.write("origin", 3000, 8, 0x54);
                assertTrue(
                        merger.isRunning() && gate.parked() > 0, "the writes came while the merge was parked mid-way");
                assertNotEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
                gate.open();
                awaitMergeStopped(e);
                assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
                byte[] base = Files.readAllBytes(e.base);
                assertEquals(0x51, base[0]);
                assertEquals(0x52, base[8 * 512]);
                assertEquals(SnapshotEngine.original(16), base[16 * 512], "the rest of chunk 2 is the snapshot's");
                assertEquals(0x53, base[19 * 512]);
                assertEquals(0x53, base[20 * 512 + 511]);
                assertEquals(SnapshotEngine.original(21), base[21 * 512]);
                assertEquals(0x54, base[3000 * 512]);
            }
        }
    }

    @Test
    void anotherSnapshotKeepsItsPointInTimeThroughTheMerge() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 64, 0x31);
            Path cowB = dir.resolve("cowB.img");
            Files.write(cowB, new byte[(int) COW]);
            e.dm.get("origin").suspend();
            e.dm.create("snapB", null, TableParser.parse("0 16384 snapshot " + e.base + " " + cowB + " P 16"));
            e.dm.get("origin").resume();
            e.write("origin", 32, 64, 0x32);
            e.write("snap", 100, 8, 0x33);
            String viewB = e.sha("snapB");
            String view = e.sha("snap");
            e.startMerge("P", 8);
            e.write("origin", 200, 8, 0x34); // through the merging device: copied out into snapB first
            awaitMergeStopped(e);
            assertEquals(viewB, e.sha("snapB"), "snapB still reads its point in time");
            byte[] expected = new byte[8 << 9];
            Arrays.fill(expected, (byte) 0x34);
            MemorySegment b = e.buffer(8);
            e.dm.get("origin").submit(IoRequest.read(200, b));
            assertArrayEquals(expected, b.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            assertNotEquals(view, e.sha("origin"));
        }
    }

    @Test
    void aReadErrorFailsTheMergeKeepsTheDataAndAResumeOrReactivationFinishesIt() throws Exception {
        Faults faults = new Faults();
        String view;
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 40; c += 2) {
                e.write("origin", c * 8L, 8, c + 1);
            }
            view = e.sha("snap");
            // The COW read of the 5th merge step fails.
            FaultyDevice cow = faults.get("cow.img");
            int[] reads = {0};
            AtomicBoolean armed = new AtomicBoolean(true);
            cow.failWhen(r -> r.op() == FaultyDevice.Op.READ && armed.get() && ++reads[0] == 5);
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            armed.set(false);
            assertEquals("0 16384 snapshot-merge Merge failed", e.status("origin", false));
            assertEquals(view, e.sha("origin"), "I/O to the merging device keeps working");
            e.write("origin", 2, 1, 0x7f); // a write to a chunk still on the COW
            view = e.sha("origin");
            // The next resume of the same instance merges again; the status still says so.
            e.dm.get("origin").suspend();
            e.dm.get("origin").resume();
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge Merge failed", e.status("origin", false));
            assertEquals(view, SnapshotEngine.sha(e.base), "the merge completed");
            assertArrayEquals(new byte[4096], area0(e));
            // A fresh activation starts clean.
            e.dm.remove("origin", false);
            e.dm.create("origin", null, TableParser.parse(e.mergeTable("P", 8)));
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
        }
    }

    @Test
    void anInvalidSnapshotIsNotMergedAndTheDeviceIsTheOrigin() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 8, 0x61);
            e.dm.remove("snap", false);
            // valid = 0 in the header, as an invalidation leaves it
            try (var ch = java.nio.channels.FileChannel.open(e.cow, java.nio.file.StandardOpenOption.WRITE)) {
                ch.write(java.nio.ByteBuffer.wrap(new byte[4]), 4);
            }
            String before = SnapshotEngine.sha(e.base);
            e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8)));
            e.dm.get("origin").resume();
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge Invalid", e.status("origin", false));
            assertEquals(before, SnapshotEngine.sha(e.base), "nothing was copied");
            assertEquals(0x61, e.readByte("origin", 0), "reads go to the origin");
            e.write("origin", 8, 8, 0x62);
            assertEquals(0x62, Files.readAllBytes(e.base)[8 * 512], "writes too");
        }
    }

    @Test
    void flushesGoToOriginAndCowAndDiscardsDoNothing() throws Exception {
        Faults faults = new Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 8, 1);
            e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8) + " 1 discard_zeroes_cow"));
            e.dm.get("origin").suspend();
            e.dm.get("snap").suspend();
            e.dm.get("origin").resume();
            awaitMergeStopped(e);
            assertEquals(
                    "0 16384 snapshot-merge " + e.base.toRealPath() + " " + e.cow.toRealPath()
                            + " P 8 1 discard_zeroes_cow",
                    e.table("origin", false));
            long originFlushes = faults.get("base.img").flushes();
            long cowFlushes = faults.get("cow.img").flushes();
            e.dm.get("origin").submit(IoRequest.flush());
            assertEquals(originFlushes + 1, faults.get("base.img").flushes());
            assertEquals(cowFlushes + 1, faults.get("cow.img").flushes());
            e.write("origin", 0, 8, 0x44);
            e.dm.get("origin").submit(new IoRequest(IoRequest.Op.DISCARD, 0, 8, null, false));
            assertEquals(0x44, e.readByte("origin", 0), "a discard has no effect");
            assertTrue(fails(e, "origin", new IoRequest(IoRequest.Op.WRITE_ZEROES, 0, 8, null, false)));
        }
        try (SnapshotEngine e = new SnapshotEngine(Files.createDirectories(dir.resolve("plain")), BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            e.startMerge("P", 8);
            assertTrue(
                    fails(e, "origin", new IoRequest(IoRequest.Op.DISCARD, 0, 8, null, false)),
                    "without discard_zeroes_cow the device takes no discards");
        }
    }

    @Test
    void aRefreshOfAnotherSnapshotPausesTheMergeAndLosesNothing() throws Exception {
        Faults faults = new Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("PO", 8);
            Path cowB = dir.resolve("cowB.img");
            Files.write(cowB, new byte[(int) COW]);
            String tableB = "0 16384 snapshot " + e.base + " " + cowB + " P 4";
            e.dm.get("origin").suspend();
            e.dm.create("snapB", null, TableParser.parse(tableB));
            e.dm.get("origin").resume();
            for (int c = 0; c < 200; c += 2) {
                e.write("snap", c * 8L, 8, c + 3); // exceptions in snap only: the merge overwrites these origin chunks
            }
            String viewB = e.sha("snapB");
            String view = e.sha("snap");
            // Each run of the loop parks at its first copy; a refresh stops the loop, whose copies
            // then go on, and restarts it.
            try (GatedMerge m = startGatedMerge(e, faults.get("cow.img"), 0)) {
                Merger merger = m.merger();
                FaultyDevice.Gate gate = m.gate();
                assertEquals(
                        "0 16384 snapshot-merge " + e.base.toRealPath() + " " + e.cow.toRealPath() + " P 8",
                        e.table("origin", false),
                        "P from the merge table, not PO from the snapshot's");
                for (int i = 0; i < 5; i++) {
                    gate.awaitParked(1);
                    assertTrue(merger.isRunning(), "refresh " + i + " comes while the merge is under way");
                    assertNotEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
                    long steps = merger.steps();
                    stopWhileParked(merger, gate, () -> {
                        e.dm.load("snapB", TableParser.parse(tableB));
                        e.dm.get("snapB").resume();
                    });
                    assertTrue(merger.steps() > steps, "the copies under way at the refresh were merged");
                }
                gate.awaitParked(1);
                assertTrue(merger.isRunning(), "the merge was restarted after the last refresh");
                gate.open();
                awaitMergeStopped(e);
                assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
                assertEquals(view, e.sha("origin"));
                assertEquals(viewB, e.sha("snapB"), "snapB got every chunk before the merge overwrote it");
                assertEquals(
                        "0 16384 snapshot 812/8192 12", e.status("snapB", false), "200 chunks of 4 copied into snapB");
            }
        }
    }

    /** A merge whose copies from the COW are held at a gate; closing opens the gate (a failed test ends). */
    private record GatedMerge(Merger merger, FaultyDevice.Gate gate) implements AutoCloseable {
        @Override
        public void close() {
            gate.open();
        }
    }

    /**
     * {@link SnapshotEngine#startMerge} with a gate on {@code cow} from before the merge starts:
     * it holds the merge's reads (its copies) after the first {@code passed}, except while a
     * stop of the merge is asked for (so that the stop finishes the steps under way and the
     * next run of the loop is held again). The source's resume, which pauses the merge, is run
     * as in {@link #stopWhileParked}.
     */
    private static GatedMerge startGatedMerge(SnapshotEngine e, FaultyDevice cow, int passed) throws Exception {
        e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8)));
        Merger merger = merging(e).merger();
        AtomicInteger reads = new AtomicInteger();
        FaultyDevice.Gate gate = cow.hold(
                r -> r.op() == FaultyDevice.Op.READ && !merger.stopRequested() && reads.incrementAndGet() > passed);
        GatedMerge m = new GatedMerge(merger, gate);
        try {
            e.dm.get("origin").suspend();
            e.dm.get("snap").suspend();
            e.dm.get("origin").resume();
            stopWhileParked(merger, gate, () -> e.dm.get("snap").resume());
            e.dm.remove("snap", false);
        } catch (Exception | Error x) {
            m.close();
            throw x;
        }
        return m;
    }

    /** What stops the merge (a suspend, a remove, another snapshot's resume). */
    private interface MergeStop {
        void run() throws Exception;
    }

    /**
     * Runs {@code stop} while the merge may be parked at {@code gate}: the stop waits for the
     * steps under way, so the parked copies are released once the stop was asked for (the gate
     * lets reads through while a stop is requested, and holds the next run's again).
     */
    private static void stopWhileParked(Merger merger, FaultyDevice.Gate gate, MergeStop stop) throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<?> stopping = pool.submit(() -> {
                stop.run();
                return null;
            });
            long deadline = System.nanoTime() + WAIT_NANOS;
            while (!merger.stopRequested() && !stopping.isDone()) {
                assertTrue(System.nanoTime() < deadline, "the merge was not asked to stop within 60 s");
                Thread.sleep(1);
            }
            gate.releaseParked();
            stopping.get(60, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
    }

    /** The merging device's status, usage numbers expected. */
    private static SnapshotStatus.Usage usage(SnapshotEngine e) throws Exception {
        TargetStatus s = e.dm.get("origin").status(false).getFirst().status();
        if (s instanceof SnapshotStatus.Usage u) {
            return u;
        }
        throw new AssertionError("no usage numbers: " + StatusText.info(s));
    }

    /** Waits until the merging device's allocated sectors drop to {@code sectors} or fewer. */
    private static void awaitAtMost(SnapshotEngine e, long sectors) throws Exception {
        long deadline = System.nanoTime() + WAIT_NANOS;
        while (true) {
            TargetStatus s = e.dm.get("origin").status(false).getFirst().status();
            if (s instanceof SnapshotStatus.Usage u && u.allocatedSectors() <= sectors) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError(
                        "the merge did not get down to " + sectors + " sectors: " + StatusText.info(s));
            }
            Thread.sleep(1);
        }
    }
}
