package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static dmsnap.snapshot.MergeProbes.merging;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.testing.ReferenceSnapshotModel;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Merges against {@link ReferenceSnapshotModel}: a seeded random history of origin and
 * snapshot writes over up to three snapshots (P, PO, N; chunk sizes 1 to 16), then the LVM merge
 * of one persistent snapshot while three threads read and write the merging device and the other
 * snapshots (each in its own region, random sizes and alignments) and the main thread suspends
 * and resumes the merging device and refreshes the other snapshots (each pausing the merge). Every
 * read equals the model (the merging device reads the merged snapshot's view from the moment the
 * merge starts); at the end the origin file is that view plus the writes, the other snapshots kept
 * their point in time, and the merge table is replaced as lvm2 does (snapshot-origin, or linear).
 */
@ExtendWith(Seeds.class)
class MergeModelTest {
    private static final int CASES = Integer.getInteger("dmsnap.tests.mergeCases", 8);
    private static final long SECTORS = 4096; // 2 MiB

    @TempDir
    Path dir;

    private static final class Run {
        final SnapshotEngine engine;
        final ReferenceSnapshotModel model;
        final List<String> snapshots = new ArrayList<>();
        final Map<String, String> tables = new HashMap<>();

        Run(SnapshotEngine engine, ReferenceSnapshotModel model) {
            this.engine = engine;
            this.model = model;
        }

        String create(Random random, int index, String store) throws Exception {
            String name = "snap" + index;
            int chunk = new int[] {1, 2, 4, 8, 16}[random.nextInt(5)];
            String table = engine.addSnapshot(name, store, chunk, SECTORS);
            model.createSnapshot(name);
            snapshots.add(name);
            tables.put(name, table);
            return name;
        }
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
        byte[] actual = buf.toArray(ValueLayout.JAVA_BYTE);
        if (!Arrays.equals(expected, actual)) {
            int at = Arrays.mismatch(expected, actual);
            throw new AssertionError(context + ": " + device + " sectors " + sector + "+" + sectors
                    + " differ from the model at byte " + at + " (sector " + (sector + at / 512) + ")");
        }
    }

    private static byte[] data(Random random, int sectors) {
        byte[] d = new byte[sectors << 9];
        random.nextBytes(d);
        return d;
    }

    @Test
    void mergesUnderConcurrentIoMatchTheModel() throws Exception {
        Random seeds = Seeds.random("merge-model");
        int ios = 0;
        int pauses = 0;
        for (int c = 0; c < CASES; c++) {
            long seed = seeds.nextLong();
            Random random = new Random(seed);
            Path caseDir = Files.createDirectories(dir.resolve("case" + c));
            try (SnapshotEngine engine = new SnapshotEngine(caseDir, SECTORS << 9, 512)) {
                Run run = new Run(engine, new ReferenceSnapshotModel(Files.readAllBytes(engine.base)));
                engine.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + engine.base));
                String merged = run.create(random, 0, random.nextBoolean() ? "P" : "PO");
                int others = random.nextInt(3);
                for (int i = 0; i < 60 + others * 20; i++) {
                    if (i % 30 == 10 && run.snapshots.size() <= others) {
                        run.create(random, run.snapshots.size(), new String[] {"P", "PO", "N"}[random.nextInt(3)]);
                    }
                    int sectors = 1 + random.nextInt(random.nextBoolean() ? 8 : 48);
                    long sector = random.nextLong(SECTORS - sectors + 1);
                    String device =
                            random.nextInt(3) == 0 ? run.snapshots.get(random.nextInt(run.snapshots.size())) : "origin";
                    write(run, device, sector, data(random, sectors));
                }
                String context = "seed " + seed;
                // lvconvert --merge
                String table = run.tables.get(merged);
                String[] w = table.split(" ");
                String mergeTable = "0 " + SECTORS + " snapshot-merge " + w[3] + " " + w[4] + " P " + w[6];
                engine.dm.load("origin", TableParser.parse(mergeTable));
                engine.dm.get("origin").suspend();
                engine.dm.get(merged).suspend();
                engine.dm.get("origin").resume();
                run.model.mergeSnapshot(merged);
                run.snapshots.remove(merged);
                engine.dm.get(merged).resume();
                engine.dm.remove(merged, false);
                List<String> devices = new ArrayList<>(run.snapshots);
                devices.add("origin");
                int threads = 3;
                long region = SECTORS / threads;
                AtomicBoolean stop = new AtomicBoolean();
                AtomicInteger done = new AtomicInteger();
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                try {
                    List<Future<?>> workers = new ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        long first = t * region;
                        Random r = new Random(random.nextLong());
                        workers.add(pool.submit(() -> {
                            while (!stop.get()) {
                                int sectors = 1 + r.nextInt(r.nextBoolean() ? 4 : 24);
                                long sector = first + r.nextLong(region - sectors + 1);
                                String device = r.nextInt(4) == 0 ? devices.get(r.nextInt(devices.size())) : "origin";
                                if (r.nextInt(3) == 0) {
                                    write(run, device, sector, data(r, sectors));
                                } else {
                                    checkRead(run, device, sector, sectors, context + " during the merge");
                                }
                                done.incrementAndGet();
                            }
                            return null;
                        }));
                    }
                    while (merging(engine).merger().isRunning() || done.get() < 300) {
                        int control = random.nextInt(4);
                        if (control == 0) {
                            engine.dm.get("origin").suspend();
                            Thread.sleep(1); // pacing only: the I/O parks meanwhile, no assertion depends on it
                            engine.dm.get("origin").resume();
                            pauses++;
                        } else if (control == 1 && !run.snapshots.isEmpty()) {
                            String other = run.snapshots.get(random.nextInt(run.snapshots.size()));
                            engine.dm.load(other, TableParser.parse(run.tables.get(other)));
                            engine.dm.get(other).resume();
                            pauses++;
                        }
                        Thread.sleep(2); // pacing only: the workers' I/O between two controls
                    }
                    stop.set(true);
                    for (Future<?> f : workers) {
                        f.get();
                    }
                } finally {
                    stop.set(true);
                    pool.shutdownNow();
                }
                ios += done.get();
                awaitMergeStopped(engine);
                String status = engine.status("origin", false);
                String[] s = status.split(" ");
                String[] usage = s[3].split("[/ ]");
                assertEquals(usage[0], s[4], context + ": the merge finished: " + status);
                for (String device : devices) {
                    checkRead(run, device, 0, (int) SECTORS, context + " after the merge");
                }
                engine.dm.get("origin").submit(IoRequest.flush());
                byte[] origin = Files.readAllBytes(engine.base);
                assertTrue(
                        Arrays.equals(run.model.read("origin", 0, (int) SECTORS << 9), origin),
                        context + ": the origin file is the merged view");
                // As lvm2 does at the end: snapshot-origin if snapshots remain, else linear.
                String after = run.snapshots.isEmpty()
                        ? "0 " + SECTORS + " linear " + engine.base + " 0"
                        : "0 " + SECTORS + " snapshot-origin " + engine.base;
                engine.dm.load("origin", TableParser.parse(after));
                engine.dm.get("origin").resume();
                for (String device : devices) {
                    checkRead(run, device, 0, (int) SECTORS, context + " after the table replacement");
                }
                if (!run.snapshots.isEmpty()) {
                    write(run, "origin", 0, data(random, 64));
                    for (String device : devices) {
                        checkRead(run, device, 0, 64, context + " after an origin write");
                    }
                }
            }
        }
        System.out.println("merge model: " + CASES + " merges, " + ios + " concurrent I/Os, " + pauses
                + " pauses (suspend/resume or another snapshot's refresh), all reads match");
        assertTrue(ios >= CASES * 300, "the I/O ran during the merges");
    }
}
