package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.MappedDevice;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.ExceptionTable;
import dmsnap.table.TableParser;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A change-map walk reads its baseline's exception table while the baseline's device goes on
 * living (issue 19): a handover (table reload on the same COW) or a removal of the baseline in
 * the middle of a walk, and a walk that starts while a handover is under way, each answer every
 * chunk that was dirty before. The interleavings are made with a sink that stops mid-walk and,
 * for the handover's critical section, by holding it open the way {@link SnapshotTarget#resume}
 * runs it.
 */
class ChangeMapLifetimeTest {
    private static final long SECTORS = 16384;
    /** Chunks (of 8 sectors) the origin writes before each walk: in micro-groups far apart. */
    private static final List<Long> DIRTY = List.of(3L, 100L, 1000L, 1500L);

    @TempDir
    Path dir;

    /** origin + snapshot {@code snap} (P 8), the origin written at {@link #DIRTY}. */
    private static SnapshotEngine engine(Path dir) throws Exception {
        SnapshotEngine e = new SnapshotEngine(dir, SECTORS << 9, 4 << 20);
        e.createOriginAndSnapshot("P", 8);
        for (long chunk : DIRTY) {
            e.write("origin", chunk * 8, 8, 0x5a);
        }
        return e;
    }

    /** The dirty chunks of one whole walk of {@code device} since {@code baseline}, calling {@code midWalk} after its first run. */
    private static Set<Long> dirtyChunks(MappedDevice device, String baseline, Runnable midWalk) throws Exception {
        Set<Long> dirty = new TreeSet<>();
        long[] at = {0, 0};
        device.changedRuns(baseline, 0, SECTORS, (sectors, changed) -> {
            for (long s = at[0]; changed && s < at[0] + sectors; s += 8) {
                dirty.add(s / 8);
            }
            at[0] += sectors;
            if (at[1]++ == 0) {
                midWalk.run();
            }
            return true;
        });
        assertEquals(SECTORS, at[0], "the walk covers the device");
        return dirty;
    }

    /** A sink's pause: the walk says it is in the middle, then waits until let go. */
    private record Pause(CountDownLatch reached, CountDownLatch go) implements Runnable {
        Pause() {
            this(new CountDownLatch(1), new CountDownLatch(1));
        }

        @Override
        public void run() {
            reached.countDown();
            try {
                go.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    private static Snapshot instanceOf(SnapshotEngine e, String device) {
        return e.registry.allSnapshots().stream()
                .filter(s -> s.deviceName().equals(device) && s.isActive() && s.isValid())
                .findFirst()
                .orElseThrow();
    }

    @Test
    void aWalkInProgressDuringAHandoverFinishesOnTheHandedOverTable() throws Exception {
        try (SnapshotEngine e = engine(dir);
                var pool = Executors.newSingleThreadExecutor()) {
            MappedDevice origin = e.dm.get("origin");
            Pause pause = new Pause();
            Future<Set<Long>> walk = pool.submit(() -> dirtyChunks(origin, "snap", pause));
            pause.reached().await();
            e.dm.load("snap", TableParser.parse(e.snapshotTable("P", 8)));
            e.dm.get("snap").resume(); // the handover: the new instance takes the live table over
            e.write("origin", 2000 * 8, 8, 0x5b); // an exception the new instance makes
            pause.go().countDown();
            assertTrue(walk.get().containsAll(DIRTY), walk.get() + " has every chunk dirty before the walk");
            assertEquals(
                    "0 16384 snapshot 56/8192 16",
                    e.status("snap", false),
                    "the handed-over store and the new exception");
            Set<Long> after = dirtyChunks(origin, "snap", () -> {});
            assertEquals(new TreeSet<>(List.of(3L, 100L, 1000L, 1500L, 2000L)), after, "a new walk: the new table");
        }
    }

    @Test
    void aBaselineRemovedMidWalkLeavesTheWalkItsTableUntilItEnds() throws Exception {
        try (SnapshotEngine e = engine(dir);
                var pool = Executors.newSingleThreadExecutor()) {
            MappedDevice origin = e.dm.get("origin");
            ExceptionTable table = instanceOf(e, "snap").completeTable();
            Pause pause = new Pause();
            Future<Set<Long>> walk = pool.submit(() -> dirtyChunks(origin, "snap", pause));
            pause.reached().await();
            e.dm.remove("snap", false);
            pause.go().countDown();
            assertEquals(new TreeSet<>(DIRTY), walk.get(), "the answer as of the walk's start");
            assertThrows(IllegalStateException.class, () -> table.lookup(0), "closed when the walk let go of it");
            IOException gone = assertThrows(IOException.class, () -> dirtyChunks(origin, "snap", () -> {}));
            assertEquals("no valid snapshot snap of this origin to compare with", gone.getMessage());
        }
    }

    /**
     * The handover's critical section ({@link SnapshotTarget#resume}: under the origin's I/O lock
     * the destination takes the store and table over, the source turns invalid, then the
     * destination becomes active) held open: a walk that starts inside it neither misses the
     * baseline nor reads the source's new, empty table; it answers once the section ends.
     */
    @Test
    void aWalkThatStartsInsideTheHandoverAnswersFromTheHandedOverTable() throws Exception {
        try (SnapshotEngine e = engine(dir);
                var pool = Executors.newFixedThreadPool(2)) {
            MappedDevice origin = e.dm.get("origin");
            Snapshot source = instanceOf(e, "snap");
            e.dm.load("snap", TableParser.parse(e.snapshotTable("P", 8)));
            Snapshot destination = e.registry.scan(source).destination();
            e.dm.get("snap").suspend();
            ReentrantReadWriteLock io = e.registry.originIoLock(source.originIdentity());
            Future<Set<Long>> walk;
            Future<Set<String>> baselines;
            io.writeLock().lock();
            try {
                destination.takeOver(source);
                walk = pool.submit(() -> dirtyChunks(origin, "snap", () -> {}));
                baselines = pool.submit(origin::baselines);
                while (io.getQueueLength() + (walk.isDone() ? 1 : 0) + (baselines.isDone() ? 1 : 0) < 2) {
                    Thread.onSpinWait(); // until each waits for the section or has answered
                }
                destination.markActive();
            } finally {
                io.writeLock().unlock();
            }
            Set<Long> dirty;
            try {
                dirty = walk.get();
            } catch (ExecutionException x) {
                throw new AssertionError("the walk failed inside the handover: " + x.getCause(), x.getCause());
            }
            assertEquals(new TreeSet<>(DIRTY), dirty);
            assertEquals(Set.of("snap"), baselines.get(), "snap is a baseline throughout");
            e.dm.get("snap").resume(); // the device swaps the destination in; nothing is left to hand over
            assertEquals(new TreeSet<>(DIRTY), dirtyChunks(origin, "snap", () -> {}));
        }
    }
}
