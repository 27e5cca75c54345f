package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.testing.ReferenceSnapshotModel;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine against {@link ReferenceSnapshotModel}: seeded random mixes of origin and snapshot
 * writes and reads of random sizes and alignments, snapshot create/remove (the LVM way: origin
 * suspended around it), handover refreshes and origin suspend/resume, with P, PO and N stores
 * and chunk sizes 1 to 16; every read and, at the end, every view equals the model. Then four
 * threads under load while 100 refreshes hand the stores over.
 */
@ExtendWith(Seeds.class)
class SnapshotModelTest {
    /** The full-COW cases run a third of this many (at least 5), on the disk (O_DIRECT files, real flushes). */
    private static final int CASES = Integer.getInteger("dmsnap.tests.modelCases", 60);

    private static final long ORIGIN_SECTORS = 4096; // 2 MiB

    @TempDir
    Path dir;

    private static final class Run {
        final SnapshotEngine engine;
        final ReferenceSnapshotModel model;
        final List<String> snapshots = new ArrayList<>();
        final java.util.Map<String, String> tables = new java.util.HashMap<>();
        int created;

        Run(SnapshotEngine engine, ReferenceSnapshotModel model) {
            this.engine = engine;
            this.model = model;
        }

        /** A COW that can never overflow for this origin. */
        String createSnapshot(Random random) throws Exception {
            String name = "snap" + (created++);
            String store = new String[] {"P", "PO", "N"}[random.nextInt(3)];
            int chunk = new int[] {1, 2, 4, 8, 16}[random.nextInt(5)];
            String table = engine.addSnapshot(name, store, chunk, ORIGIN_SECTORS);
            model.createSnapshot(name);
            snapshots.add(name);
            tables.put(name, table);
            return name;
        }

        void refresh(String name) throws Exception {
            engine.dm.load(name, TableParser.parse(tables.get(name)));
            engine.dm.get(name).resume();
        }
    }

    private static byte[] bytes(MemorySegment s) {
        return s.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    private static void write(Run run, String device, long sector, byte[] data) throws Exception {
        MemorySegment buf = run.engine.buffer(data.length >>> 9);
        buf.copyFrom(MemorySegment.ofArray(data));
        run.engine.dm.get(device).submit(IoRequest.write(sector, buf, false));
        run.model.write(device, sector, data);
    }

    private static void checkRead(Run run, String device, long sector, int sectors, String context) throws Exception {
        MemorySegment buf = run.engine.buffer(sectors);
        run.engine.dm.get(device).submit(IoRequest.read(sector, buf));
        byte[] expected = run.model.read(device, sector, sectors << 9);
        byte[] actual = bytes(buf);
        if (!java.util.Arrays.equals(expected, actual)) {
            int at = java.util.Arrays.mismatch(expected, actual);
            throw new AssertionError(context + ": " + device + " sectors " + sector + "+" + sectors
                    + " differ from the model at byte " + at + " (sector " + (sector + at / 512) + ")");
        }
    }

    private static byte[] randomData(Random random, int sectors) {
        byte[] data = new byte[sectors << 9];
        random.nextBytes(data);
        return data;
    }

    @Test
    void randomOperationsMatchTheModel() throws Exception {
        randomCases(
                "snapshot model",
                dir,
                dmsnap.store.testing.FuzzBudget.of("model", 60, 600_000),
                dmsnap.device.BackingDevices::new);
    }

    static void deleteTree(Path root) throws java.io.IOException {
        try (var files = Files.walk(root)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    static void randomCases(
            String label,
            Path root,
            dmsnap.store.testing.FuzzBudget budget,
            java.util.function.Supplier<dmsnap.device.BackingDevices> backing)
            throws Exception {
        Random seeds = Seeds.random(label);
        int operations = 0;
        dmsnap.store.testing.FuzzBudget.Clock clock = budget.start();
        int c = 0;
        for (; clock.more(c); c++) {
            long seed = seeds.nextLong();
            Random random = new Random(seed);
            Path caseDir = Files.createDirectories(root.resolve("case" + c));
            try (SnapshotEngine engine = new SnapshotEngine(caseDir, ORIGIN_SECTORS << 9, 512, backing.get())) {
                Run run = new Run(engine, new ReferenceSnapshotModel(Files.readAllBytes(engine.base)));
                engine.dm.create(
                        "origin", null, TableParser.parse("0 " + ORIGIN_SECTORS + " snapshot-origin " + engine.base));
                run.createSnapshot(random);
                for (int op = 0; op < 150; op++, operations++) {
                    String context = "seed " + seed + " op " + op;
                    int kind = random.nextInt(100);
                    int sectors = 1 + random.nextInt(random.nextBoolean() ? 8 : 64);
                    long sector = random.nextLong(ORIGIN_SECTORS - sectors + 1);
                    String snap =
                            run.snapshots.isEmpty() ? null : run.snapshots.get(random.nextInt(run.snapshots.size()));
                    if (kind < 40) {
                        write(run, "origin", sector, randomData(random, sectors));
                    } else if (kind < 58 && snap != null) {
                        write(run, snap, sector, randomData(random, sectors));
                    } else if (kind < 85) {
                        checkRead(
                                run, snap == null || random.nextBoolean() ? "origin" : snap, sector, sectors, context);
                    } else if (kind < 90 && run.snapshots.size() < 3) {
                        run.createSnapshot(random);
                    } else if (kind < 93 && snap != null) {
                        engine.dm.remove(snap, false);
                        run.snapshots.remove(snap);
                        run.model.removeSnapshot(snap);
                    } else if (kind < 98 && snap != null) {
                        run.refresh(snap);
                    } else {
                        engine.dm.get("origin").suspend();
                        engine.dm.get("origin").resume();
                    }
                }
                for (String device : List.of("origin")) {
                    checkRead(run, device, 0, (int) ORIGIN_SECTORS, "seed " + seed + " final");
                }
                for (String snap : run.snapshots) {
                    checkRead(run, snap, 0, (int) ORIGIN_SECTORS, "seed " + seed + " final");
                    assertTrue(
                            !engine.status(snap, false).contains("Invalid"),
                            "seed " + seed + ": " + snap + " stayed valid");
                }
            }
            deleteTree(caseDir); // thousands of cases: keep what is on tmpfs (memory) small
        }
        System.out.println(label + ": " + c + " cases, " + operations + " operations, all reads match");
        dmsnap.store.testing.Figures.record(
                budget.name().equals("model") ? "model.cases" : "model.tmpfs-cases",
                c + " cases, " + operations + " operations against the reference model, all reads match");
    }

    @Test
    void handoverRefreshesUnderLoadLoseNothing() throws Exception {
        Random random = Seeds.random("refresh-under-load");
        try (SnapshotEngine engine = new SnapshotEngine(dir, ORIGIN_SECTORS << 9, 512)) {
            Run run = new Run(engine, new ReferenceSnapshotModel(Files.readAllBytes(engine.base)));
            engine.dm.create(
                    "origin", null, TableParser.parse("0 " + ORIGIN_SECTORS + " snapshot-origin " + engine.base));
            String a = run.createSnapshot(new Random(random.nextLong()));
            String b = run.createSnapshot(new Random(random.nextLong()));
            int threads = 4;
            long region = ORIGIN_SECTORS / threads;
            AtomicBoolean stop = new AtomicBoolean();
            AtomicInteger ios = new AtomicInteger();
            Semaphore done = new Semaphore(0); // a permit per I/O, taken by the refresh loop
            CountDownLatch started = new CountDownLatch(threads);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> workers = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    long first = t * region;
                    Random r = new Random(random.nextLong());
                    workers.add(pool.submit(() -> {
                        while (!stop.get()) {
                            int sectors = 1 + r.nextInt(16);
                            long sector = first + r.nextLong(region - sectors + 1);
                            String device = new String[] {"origin", a, b}[r.nextInt(3)];
                            if (r.nextBoolean()) {
                                write(run, device, sector, randomData(r, sectors));
                            } else {
                                checkRead(run, device, sector, sectors, "under load");
                            }
                            ios.incrementAndGet();
                            done.release();
                            started.countDown();
                        }
                        return null;
                    }));
                }
                awaitIo(workers, () -> started.await(1, TimeUnit.SECONDS), "every worker did I/O");
                for (int i = 0; i < 100; i++) {
                    // Keep the load on: each refresh waits until the workers did 20 more I/Os.
                    awaitIo(workers, () -> done.tryAcquire(20, 1, TimeUnit.SECONDS), "20 I/Os before refresh " + i);
                    run.refresh(i % 2 == 0 ? a : b);
                }
                stop.set(true);
                for (Future<?> w : workers) {
                    w.get();
                }
            } finally {
                stop.set(true);
                pool.shutdownNow();
            }
            for (String device : List.of("origin", a, b)) {
                checkRead(run, device, 0, (int) ORIGIN_SECTORS, "after the refreshes");
                if (!device.equals("origin")) {
                    assertEquals(false, engine.status(device, false).contains("Invalid"));
                }
            }
            System.out.println("refresh under load: 100 handovers, " + ios.get()
                    + " I/Os by 4 threads, no error, views equal the model");
            assertTrue(ios.get() >= 2000, "the refreshes ran under load: " + ios.get() + " I/Os");
        }
    }

    /** A wait of at most a second. */
    private interface Wait {
        boolean await() throws InterruptedException;
    }

    /**
     * Waits up to 60 s until {@code wait} succeeds; fails at once with a worker's error if one
     * has ended (they run until stopped).
     */
    private static void awaitIo(List<Future<?>> workers, Wait wait, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!wait.await()) {
            for (Future<?> w : workers) {
                if (w.isDone()) {
                    w.get(); // throws what ended it
                    throw new AssertionError("a worker ended while waiting for " + what);
                }
            }
            assertTrue(System.nanoTime() < deadline, "no " + what + " within 60 s");
        }
    }

    /**
     * Small COWs that fill up: a P snapshot (or an origin write into any full COW) invalidates,
     * a PO snapshot write into a full COW overflows. The model then expects: an invalid snapshot
     * errors every read and write; an overflowed one errors writes and still reads its view;
     * the origin is never affected.
     */
    @Test
    void fullCowsInvalidateOrOverflowAsTheKernelDoes() throws Exception {
        Random seeds = Seeds.random("snapshot-overflow");
        int cases = Math.max(5, CASES / 3);
        int invalidated = 0;
        int overflowed = 0;
        for (int c = 0; c < cases; c++) {
            long seed = seeds.nextLong();
            Random random = new Random(seed);
            Path caseDir = Files.createDirectories(dir.resolve("full" + c));
            try (SnapshotEngine engine = new SnapshotEngine(caseDir, ORIGIN_SECTORS << 9, 512)) {
                ReferenceSnapshotModel model = new ReferenceSnapshotModel(Files.readAllBytes(engine.base));
                engine.dm.create(
                        "origin", null, TableParser.parse("0 " + ORIGIN_SECTORS + " snapshot-origin " + engine.base));
                String store = c % 2 == 1 || random.nextBoolean() ? "PO" : "P";
                Path cow = caseDir.resolve("small.cow");
                Files.write(cow, new byte[(int) ((16 + random.nextInt(32)) * 4096L)]);
                engine.dm.get("origin").suspend();
                engine.dm.create(
                        "snap",
                        null,
                        TableParser.parse(
                                "0 " + ORIGIN_SECTORS + " snapshot " + engine.base + " " + cow + " " + store + " 8"));
                engine.dm.get("origin").resume();
                model.createSnapshot("snap");
                Run run = new Run(engine, model);
                boolean invalid = false;
                boolean overflow = false;
                boolean sawOverflow = false;
                for (int op = 0; op < 120; op++) {
                    String context = "seed " + seed + " op " + op + " (" + store + ")";
                    int sectors = 1 + random.nextInt(16);
                    long sector = random.nextLong(ORIGIN_SECTORS - sectors + 1);
                    // Odd cases write mostly to the snapshot, so that a snapshot write finds the COW full.
                    int kind = c % 2 == 1 && random.nextInt(20) != 0 ? 1 + random.nextInt(2) : random.nextInt(3);
                    if (kind == 0) {
                        write(run, "origin", sector, randomData(random, sectors)); // never fails
                    } else if (kind == 1) {
                        byte[] data = randomData(random, sectors);
                        MemorySegment buf = engine.buffer(sectors);
                        buf.copyFrom(MemorySegment.ofArray(data));
                        try {
                            engine.dm.get("snap").submit(IoRequest.write(sector, buf, false));
                            if (invalid || overflow) {
                                throw new AssertionError(context + ": a write to a full snapshot succeeded");
                            }
                            model.write("snap", sector, data);
                        } catch (java.io.IOException e) {
                            // Allowed only once the COW is full: learn which state the kernel rules give.
                            String status = engine.status("snap", false);
                            invalid = status.endsWith("Invalid");
                            overflow = status.endsWith("Overflow");
                            assertTrue(invalid || overflow, context + ": write failed but status is " + status);
                            assertEquals(store.equals("PO") && !invalid, overflow, context);
                            sawOverflow |= overflow;
                            // A failed multi-chunk write may have landed its first chunks: resync the model.
                            if (overflow) {
                                MemorySegment back = engine.buffer(sectors);
                                engine.dm.get("snap").submit(IoRequest.read(sector, back));
                                model.write("snap", sector, bytes(back));
                            }
                        }
                    } else if (!invalid) {
                        checkRead(run, "snap", sector, sectors, context);
                    }
                    String status = engine.status("snap", false);
                    if (status.endsWith("Invalid")) {
                        invalid = true;
                        overflow = false;
                    }
                    if (invalid) {
                        assertTrue(throwsOnRead(engine, sector, sectors), context + ": an invalid snapshot read data");
                    }
                    checkRead(run, "origin", sector, sectors, context);
                }
                invalidated += invalid ? 1 : 0;
                overflowed += sawOverflow ? 1 : 0;
            }
        }
        System.out.println("full COWs: " + cases + " cases, " + invalidated + " ended invalid, " + overflowed
                + " overflowed on a snapshot write (an origin write may invalidate them later)");
        assertTrue(invalidated > 0 && overflowed > 0, "both outcomes were reached");
    }

    private static boolean throwsOnRead(SnapshotEngine engine, long sector, int sectors) throws Exception {
        try {
            engine.dm.get("snap").submit(IoRequest.read(sector, engine.buffer(sectors)));
            return false;
        } catch (java.io.IOException e) {
            return true;
        }
    }
}
