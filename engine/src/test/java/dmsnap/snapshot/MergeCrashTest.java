package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static dmsnap.snapshot.MergeProbes.merging;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Crash safety of the merge (spec 9.2): the power fails before the k-th device operation of a
 * merge, for every k, on origin and COW at once; the operation and everything after it fail,
 * then each device loses what it had not flushed (all of it, or a random part, torn at a sector,
 * mmapped stores written back or not). A fresh activation of the COW as snapshot-merge must then
 * load, finish the merge, and leave the origin equal to the snapshot's view, with area 0 zeroed.
 * The COW has several areas (chunk 1: 32 exceptions per area), runs and single chunks. Also:
 * writes to the merging device that were acknowledged by a flush survive a crash at a random
 * point of a merge under load.
 */
@ExtendWith(Seeds.class)
class MergeCrashTest {
    private static final int SECTORS = 256; // chunk 1: 256 chunks

    @TempDir
    Path dir;

    /** One power supply for both devices: it fails before operation {@code cutAt} (1-based) once armed. */
    private static final class Power {
        final AtomicLong operations = new AtomicLong();
        final AtomicBoolean failed = new AtomicBoolean();
        volatile boolean armed;
        volatile long cutAt = Long.MAX_VALUE;
        /** Only operation cutAt fails (an I/O error), not the ones after it. */
        volatile boolean single;
        /** The COW's device: its metadata maps stop taking stores once the power is off. */
        volatile FaultyDevice cow;

        final List<String> labels = new CopyOnWriteArrayList<>();

        Predicate<FaultyDevice.Request> on(String device, long metadataStride) {
            return r -> {
                if (failed.get()) {
                    return true;
                }
                if (!armed) {
                    return false;
                }
                long n = operations.incrementAndGet();
                labels.add(label(device, r, metadataStride));
                if (single) {
                    return n == cutAt;
                }
                if (n >= cutAt) {
                    // Takes the COW's lock under the origin's at most (never the other way round).
                    FaultyDevice c = cow;
                    if (failed.compareAndSet(false, true) && c != null) {
                        c.cutPower(); // stores made after the cut never reach the media, whatever crash() writes back
                    }
                    return true;
                }
                return false;
            };
        }

        private static String label(String device, FaultyDevice.Request r, long stride) {
            if (device.equals("origin")) {
                return "origin " + r.op().name().toLowerCase(java.util.Locale.ROOT);
            }
            return switch (r.op()) {
                case READ -> (r.offsetBytes() / 512) % stride == 1 ? "area read (previous area)" : "COW data read";
                case WRITE -> "area write (commit_merge)";
                case FLUSH -> "COW flush (commit_merge)";
                default -> "COW " + r.op();
            };
        }
    }

    private record Prepared(byte[] base, byte[] cow, byte[] view) {}

    /** A snapshot (P, chunk 1) with runs and singles over several areas; its view. */
    private Prepared prepare(Random random) throws Exception {
        Path d = Files.createDirectories(dir.resolve("prepare"));
        try (SnapshotEngine e = new SnapshotEngine(d, SECTORS << 9, 256 << 10)) {
            e.createOriginAndSnapshot("P", 1);
            for (int i = 0; i < 40; i++) {
                int n = 1 + random.nextInt(6);
                e.write("origin", random.nextInt(SECTORS - n), n, 0x10 + i);
            }
            for (int i = 0; i < 12; i++) {
                e.write("snap", random.nextInt(SECTORS), 1, 0x80 + i);
            }
            byte[] view = bytes(e, "snap");
            e.dm.remove("snap", false);
            e.dm.remove("origin", false);
            return new Prepared(Files.readAllBytes(e.base), Files.readAllBytes(e.cow), view);
        }
    }

    private static byte[] bytes(SnapshotEngine e, String device) throws Exception {
        MemorySegment b = e.buffer(SECTORS);
        e.dm.get(device).submit(IoRequest.read(0, b));
        return b.toArray(ValueLayout.JAVA_BYTE);
    }

    private static String mergeTable(Path base, Path cow) {
        return "0 " + SECTORS + " snapshot-merge " + base + " " + cow + " P 1";
    }

    /**
     * The disks of one case: the files only give the devices their identity; the bytes live in
     * memory devices (fast: no fsync), taken over from one "boot" to the next.
     */
    private final class Disks {
        final Path base;
        final Path cow;
        byte[] baseBytes;
        byte[] cowBytes;
        final List<FaultyDevice> faulty = new ArrayList<>();
        final List<MemoryDevice> media = new ArrayList<>();

        Disks(Prepared p) throws IOException {
            Path d = Files.createDirectories(dir.resolve("disks"));
            base = d.resolve("base.img");
            cow = d.resolve("cow.img");
            if (!Files.exists(base)) {
                Files.createFile(base);
                Files.createFile(cow);
            }
            baseBytes = p.base();
            cowBytes = p.cow();
        }

        /** Backing devices for one boot; with {@code power}, behind fault injection. */
        BackingDevices boot(Power power) {
            faulty.clear();
            media.clear();
            return new BackingDevices(real -> {
                boolean isBase = real.getFileName().toString().startsWith("base");
                byte[] bytes = isBase ? baseBytes : cowBytes;
                MemoryDevice m = new MemoryDevice(real.toString(), bytes.length);
                m.write(0, MemorySegment.ofArray(bytes));
                media.add(m);
                if (power == null) {
                    return m;
                }
                FaultyDevice f = new FaultyDevice(m);
                if (!isBase) {
                    power.cow = f;
                }
                f.failWhen(power.on(isBase ? "origin" : "cow", 33));
                faulty.add(f);
                return f;
            });
        }

        /** What survived on the media (before the engine closes them). */
        void keep() {
            for (MemoryDevice m : media) {
                byte[] bytes = m.contents().toArray(ValueLayout.JAVA_BYTE);
                if (m.name().equals(base.toString())) {
                    baseBytes = bytes;
                } else {
                    cowBytes = bytes;
                }
            }
        }
    }

    /** One crash: merge with the power failing before operation cutAt, crash, then finish the merge from disk. */
    private String crashAt(Prepared p, long cutAt, Random crash, Power power, String caseName) throws Exception {
        return crashAt(p, cutAt, crash, power, caseName, MergeSettings.DEFAULTS);
    }

    /** The same, with the merge batching its commits as {@code merge} says (before and after the crash). */
    private String crashAt(Prepared p, long cutAt, Random crash, Power power, String caseName, MergeSettings merge)
            throws Exception {
        Disks disks = new Disks(p);
        try (SnapshotEngine e = new SnapshotEngine(dir, disks.base, disks.cow, disks.boot(power), merge)) {
            e.dm.create("origin", null, null);
            e.dm.load("origin", TableParser.parse(mergeTable(disks.base, disks.cow)));
            power.cutAt = cutAt;
            power.armed = true;
            e.dm.get("origin").resume();
            awaitMergeStopped(e);
            power.armed = false;
            for (FaultyDevice f : disks.faulty) {
                if (crash == null) {
                    f.crash();
                } else {
                    f.crash(crash);
                }
            }
            disks.keep();
        }
        try (SnapshotEngine e = new SnapshotEngine(dir, disks.base, disks.cow, disks.boot(null), merge)) {
            e.dm.create("origin", null, TableParser.parse(mergeTable(disks.base, disks.cow)));
            awaitMergeStopped(e);
            assertEquals(
                    "0 " + SECTORS + " snapshot-merge 2/512 2", e.status("origin", false), caseName + ": final status");
            disks.keep();
        }
        assertArrayEquals(p.view(), disks.baseBytes, caseName + ": the origin equals the snapshot's view");
        assertArrayEquals(new byte[512], Arrays.copyOfRange(disks.cowBytes, 512, 1024), caseName + ": area 0 is zero");
        return power.failed.get() ? "resumed and completed" : "completed before the cut";
    }

    /**
     * Every cut point, with steps committed one by one (as the kernel) and, with every step
     * batched ({@link MergeSettings#batchStepBytes} 1), several steps per origin flush and COW
     * flush (batches of 16, {@link MergeSettings#commitBatch}, so that cuts fall between batches too).
     */
    @ParameterizedTest(name = "batch steps of at least {0} bytes")
    @ValueSource(longs = {Merger.BATCH_STEP_BYTES, 1})
    void aPowerCutAtEveryOperationOfTheMergeLeavesACowThatFinishesTheMerge(long batchStepBytes) throws Exception {
        MergeSettings merge = new MergeSettings(batchStepBytes, 16);
        Random random = Seeds.random("merge-crash");
        Prepared p = prepare(random);
        // A clean run: how many operations, and which.
        Power clean = new Power();
        crashAt(p, Long.MAX_VALUE, null, clean, "clean", merge);
        List<String> labels = List.copyOf(clean.labels);
        long total = labels.size();
        assertTrue(total > 100, "the merge does enough I/O to be interesting: " + total);
        assertTrue(labels.contains("area read (previous area)"), "the merge steps back over areas");
        long copies = labels.stream().filter("COW data read"::equals).count();
        long originFlushes = labels.stream().filter("origin flush"::equals).count();
        System.out.println("merge crash, batch steps of at least " + batchStepBytes + " bytes: " + copies + " copies, "
                + originFlushes + " origin flushes");
        if (batchStepBytes == 1) {
            assertTrue(
                    originFlushes * 8 <= copies,
                    "steps commit up to 16 at a time: " + originFlushes + " origin flushes for " + copies + " copies");
        } else {
            assertTrue(
                    originFlushes >= copies,
                    "one origin flush per step: " + originFlushes + " for " + copies + " copies");
        }
        Map<String, int[]> matrix = new TreeMap<>();
        for (long k = 1; k <= total + 1; k++) {
            String step = k <= total ? labels.get((int) (k - 1)) : "after the last operation";
            for (int mode = 0; mode < 2; mode++) {
                Random crash = mode == 0 ? null : new Random(random.nextLong());
                String outcome = crashAt(p, k, crash, new Power(), "cut" + k + "m" + mode, merge);
                matrix.computeIfAbsent(step, s -> new int[4])[mode * 2 + (outcome.startsWith("resumed") ? 0 : 1)]++;
            }
        }
        StringBuilder table = new StringBuilder("merge crash matrix (" + total + " operations, chunk 1, "
                + (batchStepBytes == 1 ? "steps committed in batches, " : "steps committed one by one, ")
                + "every cut point x {lose all unflushed, random partial writeback}):\n");
        table.append(String.format("  %-28s %-26s %-26s%n", "power cut before", "lose unflushed", "random writeback"));
        matrix.forEach((step, n) -> table.append(String.format(
                "  %-28s %-26s %-26s%n",
                step,
                n[0] + " resumed+completed" + (n[1] > 0 ? ", " + n[1] + " done" : ""),
                n[2] + " resumed+completed" + (n[3] > 0 ? ", " + n[3] + " done" : ""))));
        System.out.print(table);
        Figures.record(
                "crash.merge.cuts." + (batchStepBytes == 1 ? "batched" : "one-by-one"),
                2 * (total + 1)
                        + " power cuts (before each of " + total + " merge operations and after the last, x {lose all"
                        + " unflushed, random partial writeback}): every one resumed and completed (or had completed), origin = snapshot view");
    }

    /**
     * One failing operation of each kind (no crash): the merge stops with {@code Merge failed},
     * the merging device still reads the snapshot's view, and the next resume of the same
     * instance finishes the merge (the status keeps saying {@code Merge failed}, as the kernel's).
     */
    @Test
    void aFailedOperationStopsTheMergeWithMergeFailedAndTheNextResumeFinishesIt() throws Exception {
        Random random = Seeds.random("merge-fault");
        Prepared p = prepare(random);
        Power clean = new Power();
        crashAt(p, Long.MAX_VALUE, null, clean, "clean");
        Map<String, Integer> firstOfKind = new TreeMap<>();
        for (int i = 0; i < clean.labels.size(); i++) {
            firstOfKind.putIfAbsent(clean.labels.get(i), i + 1);
        }
        assertEquals(6, firstOfKind.size(), "every kind of operation: " + firstOfKind.keySet());
        for (Map.Entry<String, Integer> kind : firstOfKind.entrySet()) {
            // Not the first step's, so that a step before it has committed.
            int k = kind.getValue() + (kind.getKey().startsWith("area read") ? 0 : 10);
            Disks disks = new Disks(p);
            Power power = new Power();
            power.single = true;
            try (SnapshotEngine e = new SnapshotEngine(dir, disks.base, disks.cow, disks.boot(power))) {
                e.dm.create("origin", null, null);
                e.dm.load("origin", TableParser.parse(mergeTable(disks.base, disks.cow)));
                power.cutAt = k;
                power.armed = true;
                e.dm.get("origin").resume();
                awaitMergeStopped(e);
                String what = kind.getKey() + " (operation " + k + ")";
                assertEquals("0 " + SECTORS + " snapshot-merge Merge failed", e.status("origin", false), what);
                assertTrue(merging(e).store().usage().allocatedSectors() > 2, what + ": stopped before the end");
                assertArrayEquals(
                        p.view(), bytes(e, "origin"), what + ": the merging device reads the snapshot's view");
                e.dm.get("origin").suspend();
                e.dm.get("origin").resume();
                awaitMergeStopped(e);
                assertEquals("0 " + SECTORS + " snapshot-merge Merge failed", e.status("origin", false), what);
                assertEquals(
                        2, merging(e).store().usage().allocatedSectors(), what + ": the resume finished the merge");
                e.dm.get("origin").submit(IoRequest.flush());
                disks.keep();
            }
            assertArrayEquals(p.view(), disks.baseBytes, kind.getKey() + ": the origin equals the snapshot's view");
        }
    }

    /**
     * Writes to the merging device, each followed by a flush, while the merge runs; the power
     * fails at a random operation. After the restart the merge finishes, every acknowledged write
     * is on the origin, and every sector nobody wrote is the snapshot's.
     */
    @Test
    void acknowledgedWritesToTheMergingDeviceSurviveACrash() throws Exception {
        Random random = Seeds.random("merge-crash-writes");
        Prepared p = prepare(random);
        for (int c = 0; c < 12; c++) {
            Disks disks = new Disks(p);
            Power power = new Power();
            Map<Integer, Byte> acknowledged = new TreeMap<>();
            Map<Integer, Byte> inFlight = new TreeMap<>();
            List<Integer> sectors = new ArrayList<>();
            for (int s = 0; s < SECTORS; s++) {
                sectors.add(s);
            }
            java.util.Collections.shuffle(sectors, random);
            try (SnapshotEngine e = new SnapshotEngine(dir, disks.base, disks.cow, disks.boot(power))) {
                e.dm.create("origin", null, null);
                e.dm.load("origin", TableParser.parse(mergeTable(disks.base, disks.cow)));
                power.cutAt = 20 + random.nextInt(300);
                power.armed = true;
                e.dm.get("origin").resume();
                for (int i = 0; i < 60 && !power.failed.get(); i++) {
                    int sector = sectors.get(i);
                    byte value = (byte) (0xa0 + c + i);
                    inFlight.put(sector, value);
                    try {
                        e.write("origin", sector, 1, value);
                        e.dm.get("origin").submit(IoRequest.flush());
                        acknowledged.put(sector, value);
                        inFlight.remove(sector);
                    } catch (IOException failed) {
                        break; // the power is off
                    }
                }
                awaitMergeStopped(e);
                power.armed = false;
                Random crash = new Random(random.nextLong());
                for (FaultyDevice f : disks.faulty) {
                    f.crash(crash);
                }
                disks.keep();
            }
            try (SnapshotEngine e = new SnapshotEngine(dir, disks.base, disks.cow, disks.boot(null))) {
                e.dm.create("origin", null, TableParser.parse(mergeTable(disks.base, disks.cow)));
                awaitMergeStopped(e);
                assertEquals("0 " + SECTORS + " snapshot-merge 2/512 2", e.status("origin", false));
                disks.keep();
            }
            byte[] origin = disks.baseBytes;
            for (int s = 0; s < SECTORS; s++) {
                byte[] actual = Arrays.copyOfRange(origin, s * 512, s * 512 + 512);
                byte[] view = Arrays.copyOfRange(p.view(), s * 512, s * 512 + 512);
                String where = "case " + c + " (cut at " + power.cutAt + ") sector " + s;
                if (acknowledged.containsKey(s)) {
                    byte[] expected = new byte[512];
                    Arrays.fill(expected, acknowledged.get(s));
                    assertArrayEquals(expected, actual, where + ": an acknowledged write");
                } else if (!inFlight.containsKey(s)) {
                    assertArrayEquals(view, actual, where + ": nobody wrote it");
                }
            }
        }
    }
}
