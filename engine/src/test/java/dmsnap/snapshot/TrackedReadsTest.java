package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.testing.FaultyDevice;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tracked reads (spec 5.1, the kernel's {@code __check_for_conflicting_io}): a snapshot read of an
 * origin chunk that began before an origin write's copy-out of that chunk finishes before the
 * write is released, and the copy-out parks meanwhile instead of spinning.
 */
class TrackedReadsTest {
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(60);

    @TempDir
    Path dir;

    /** The thread completing the exception of a copy-out ({@code finish}, pending_complete), or null. */
    private static Thread completing() {
        for (var e : Thread.getAllStackTraces().entrySet()) {
            if (Arrays.stream(e.getValue())
                    .anyMatch(f -> f.getClassName().startsWith("dmsnap.snapshot.")
                            && f.getMethodName().equals("finish"))) {
                return e.getKey();
            }
        }
        return null;
    }

    @Test
    void aCopyOutParksUntilASnapshotReadOfItsChunkReturns() throws Exception {
        SnapshotMergeTest.Faults faults = new SnapshotMergeTest.Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20, faults.devices())) {
            e.createOriginAndSnapshot("N", 8);
            FaultyDevice base = faults.get("base.img");
            AtomicBoolean holdNext = new AtomicBoolean(true);
            FaultyDevice.Gate gate =
                    base.hold(r -> r.op() == FaultyDevice.Op.READ && holdNext.compareAndSet(true, false));
            AtomicReference<Byte> seen = new AtomicReference<>();
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread reader = Thread.ofPlatform().name("snapshot-reader").start(() -> {
                try {
                    seen.set(e.readByte("snap", 8)); // chunk 1, on the origin: tracked
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            try {
                gate.awaitParked(1);
                Thread writer = Thread.ofPlatform().name("origin-writer").start(() -> {
                    try {
                        e.write("origin", 8, 8, 0x55); // copies chunk 1 out, then waits for the read
                    } catch (Throwable t) {
                        failed.set(t);
                    }
                });
                long end = System.nanoTime() + WAIT_NANOS;
                Thread t;
                while ((t = completing()) == null || t.getState() != Thread.State.WAITING) {
                    assertTrue(
                            System.nanoTime() < end,
                            "no copy-out parked waiting for the tracked read within 60 s: "
                                    + (t == null ? "none in finish" : t.getName() + " " + t.getState()));
                    Thread.yield();
                }
                assertTrue(writer.isAlive(), "the origin write is not released while the read runs");
                assertEquals(1, gate.parked());
                gate.open();
                reader.join();
                writer.join();
            } finally {
                gate.open();
            }
            assertEquals(null, failed.get());
            assertEquals(SnapshotEngine.original(8), seen.get(), "the read saw the origin before the write");
            assertEquals(SnapshotEngine.original(8), e.readByte("snap", 8));
            assertEquals((byte) 0x55, e.readByte("origin", 8));
        }
    }

    /** Whether {@code t} is parked in the copy-out's wait for the exceptions its write needs. */
    private static boolean waitingForExceptions(Thread t) {
        return t.getState() == Thread.State.WAITING
                && Arrays.stream(t.getStackTrace())
                        .anyMatch(f -> f.getClassName().equals("dmsnap.snapshot.CopyOut")
                                && f.getMethodName().equals("awaitAll"));
    }

    /**
     * While a copy-out waits for a snapshot read of its chunk (its exception already in the
     * complete table), another origin write to that chunk must wait too, as the kernel's
     * {@code __origin_write} finds the pending exception before the complete one: going ahead, it
     * would overwrite the origin chunk the read is still fetching.
     */
    @Test
    void anotherOriginWriteToTheChunkWaitsForThePendingExceptionNotJustTheCompleteOne() throws Exception {
        SnapshotMergeTest.Faults faults = new SnapshotMergeTest.Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20, faults.devices())) {
            e.createOriginAndSnapshot("N", 8);
            FaultyDevice base = faults.get("base.img");
            AtomicBoolean holdNext = new AtomicBoolean(true);
            FaultyDevice.Gate gate =
                    base.hold(r -> r.op() == FaultyDevice.Op.READ && holdNext.compareAndSet(true, false));
            AtomicReference<Byte> seen = new AtomicReference<>();
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread reader = Thread.ofPlatform().name("snapshot-reader").start(() -> {
                try {
                    seen.set(e.readByte("snap", 8));
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            try {
                gate.awaitParked(1);
                Thread first = Thread.ofPlatform().name("origin-writer").start(() -> {
                    try {
                        e.write("origin", 8, 8, 0x55);
                    } catch (Throwable t) {
                        failed.set(t);
                    }
                });
                long end = System.nanoTime() + WAIT_NANOS;
                Thread t;
                while ((t = completing()) == null || t.getState() != Thread.State.WAITING) {
                    assertTrue(System.nanoTime() < end, "no copy-out parked waiting for the tracked read within 60 s");
                    Thread.yield();
                }
                Thread second = Thread.ofPlatform().name("second-origin-writer").start(() -> {
                    try {
                        e.write("origin", 8, 8, 0x66);
                    } catch (Throwable x) {
                        failed.set(x);
                    }
                });
                while (second.isAlive() && !waitingForExceptions(second)) {
                    assertTrue(System.nanoTime() < end, "the second origin write neither waited nor finished");
                    Thread.yield();
                }
                gate.open();
                reader.join();
                first.join();
                second.join();
            } finally {
                gate.open();
            }
            assertEquals(null, failed.get());
            assertEquals(SnapshotEngine.original(8), seen.get(), "the read saw the origin before either write");
            assertEquals(SnapshotEngine.original(8), e.readByte("snap", 8));
            byte now = e.readByte("origin", 8);
            assertTrue(now == 0x55 || now == 0x66, "one of the two writes, released together: " + now);
        }
    }
}
