package dmsnap.store.copy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.Patterns;
import dmsnap.store.testing.Seeds;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(Seeds.class)
class ChunkCopierTest {
    /** No read error and no write error. */
    private static boolean allSucceeded(CopyResult r) {
        return r.readError() == null && r.writeErrors().stream().allMatch(e -> e == null);
    }

    private static MemoryDevice filled(String name, long bytes) {
        MemoryDevice d = new MemoryDevice(name, bytes);
        MemorySegment data = MemorySegment.ofArray(new byte[(int) bytes]);
        Patterns.fill(data, Seeds.random(name));
        d.write(0, data);
        return d;
    }

    @Test
    void oneReadFeedsEveryDestinationInBufferSizedPieces() throws Exception {
        try (ChunkCopier copier = new ChunkCopier(2, 8192);
                MemoryDevice origin = filled("origin", 1 << 20);
                MemoryDevice cowA = new MemoryDevice("a", 1 << 20);
                MemoryDevice cowB = new MemoryDevice("b", 1 << 20)) {
            CopyResult r = copier.copy(new CopyOp(
                            origin,
                            65536,
                            32768,
                            List.of(new CopyOp.Destination(cowA, 4096), new CopyOp.Destination(cowB, 0))))
                    .get();
            assertTrue(allSucceeded(r));
            assertNull(Patterns.difference(
                    origin.contents().asSlice(65536, 32768), cowA.contents().asSlice(4096, 32768)));
            assertNull(Patterns.difference(
                    origin.contents().asSlice(65536, 32768), cowB.contents().asSlice(0, 32768)));
            assertTrue(Patterns.isZero(cowA.contents().asSlice(0, 4096)), "nothing outside the range");
            assertEquals(1, copier.completedCopies());
        }
    }

    /**
     * copyHere runs on the calling thread while a caller buffer is free (one per I/O thread),
     * and on the copier's threads once all of them are taken; both copy the same bytes.
     */
    @Test
    void copyHereRunsOnTheCallersThreadWhileACallerBufferIsFree() throws Exception {
        MemoryDevice data = filled("origin", 1 << 20);
        FaultyDevice origin = new FaultyDevice(data);
        List<Thread> readers = new java.util.concurrent.CopyOnWriteArrayList<>();
        origin.failWhen(r -> {
            readers.add(Thread.currentThread());
            return false;
        });
        // The first copy holds the only caller buffer while its write waits (on another device's monitor).
        FaultyDevice slow = new FaultyDevice(new MemoryDevice("slow", 1 << 20));
        java.util.concurrent.CountDownLatch holding = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        slow.failWhen(r -> {
            holding.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return false;
        });
        try (ChunkCopier copier = new ChunkCopier(1, 4096);
                MemoryDevice cow = new MemoryDevice("cow", 1 << 20)) {
            Thread holder = Thread.ofPlatform()
                    .start(() -> copier.copyHere(new CopyOp(origin, 0, 4096, List.of(new CopyOp.Destination(slow, 0))))
                            .join());
            holding.await();
            assertEquals(holder, readers.getFirst(), "the first copy ran on its caller's thread");
            var second = copier.copyHere(new CopyOp(origin, 8192, 4096, List.of(new CopyOp.Destination(cow, 8192))));
            assertTrue(allSucceeded(second.get()));
            assertTrue(
                    readers.get(1).getName().startsWith("dmsnap-copier-"),
                    "no caller buffer free: on the copier's thread, not "
                            + readers.get(1).getName());
            release.countDown();
            holder.join();
            var third = copier.copyHere(new CopyOp(origin, 16384, 4096, List.of(new CopyOp.Destination(cow, 16384))));
            assertTrue(third.isDone(), "done when it returns");
            assertEquals(Thread.currentThread(), readers.get(2));
            for (long at : new long[] {8192, 16384}) {
                assertNull(Patterns.difference(
                        data.contents().asSlice(at, 4096), cow.contents().asSlice(at, 4096)));
            }
            assertEquals(3, copier.completedCopies());
        }
    }

    /**
     * A lane writes its copies in the order they were started, piece after piece, while the
     * next piece is read: the first write is held until the read of the piece after it has been
     * seen, which only a read ahead can do.
     */
    @Test
    void aLaneWritesInStartOrderWhileTheNextPieceIsRead() throws Exception {
        MemoryDevice data = filled("origin", 1 << 20);
        FaultyDevice origin = new FaultyDevice(data);
        java.util.concurrent.CountDownLatch secondRead = new java.util.concurrent.CountDownLatch(1);
        origin.failWhen(r -> {
            if (r.offsetBytes() == 4096) {
                secondRead.countDown();
            }
            return false;
        });
        MemoryDevice cowData = new MemoryDevice("cow", 1 << 20);
        FaultyDevice cow = new FaultyDevice(cowData);
        List<Long> writes = new java.util.concurrent.CopyOnWriteArrayList<>();
        boolean[] overlapped = new boolean[1];
        cow.failWhen(r -> {
            if (r.op() == FaultyDevice.Op.WRITE) {
                if (writes.isEmpty()) {
                    try {
                        overlapped[0] = secondRead.await(60, java.util.concurrent.TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                writes.add(r.offsetBytes());
            }
            return false;
        });
        try (ChunkCopier copier = new ChunkCopier(4, 4096)) {
            List<java.util.concurrent.CompletableFuture<CopyResult>> copies = new ArrayList<>();
            try (ChunkCopier.Lane lane = copier.lane()) {
                copies.add(lane.copy(new CopyOp(origin, 0, 12288, List.of(new CopyOp.Destination(cow, 0)))));
                copies.add(lane.copy(new CopyOp(origin, 65536, 8192, List.of(new CopyOp.Destination(cow, 65536)))));
                copies.add(lane.copy(new CopyOp(origin, 131072, 4096, List.of(new CopyOp.Destination(cow, 131072)))));
            } // close waits for them
            for (var c : copies) {
                assertTrue(c.isDone() && allSucceeded(c.get()));
            }
            assertTrue(overlapped[0], "the second piece was read while the first was being written");
            assertEquals(List.of(0L, 4096L, 8192L, 65536L, 69632L, 131072L), writes);
            cow.flush(); // out of the faulty device's volatile cache
            for (long at : new long[] {0, 65536, 131072}) {
                assertNull(Patterns.difference(
                        data.contents().asSlice(at, 4096), cowData.contents().asSlice(at, 4096)));
            }
            assertEquals(3, copier.completedCopies());
            assertEquals(6 * 4096, copier.stats().writtenBytes());
        }
    }

    @Test
    void aReadErrorInALaneStopsOnlyItsCopy() throws Exception {
        MemoryDevice data = filled("origin", 1 << 20);
        FaultyDevice origin = new FaultyDevice(data);
        origin.failWhen(r -> r.offsetBytes() == 69632);
        try (ChunkCopier copier = new ChunkCopier(2, 4096);
                MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ChunkCopier.Lane lane = copier.lane()) {
            var first = lane.copy(new CopyOp(origin, 0, 8192, List.of(new CopyOp.Destination(cow, 0))));
            var failing = lane.copy(new CopyOp(origin, 65536, 12288, List.of(new CopyOp.Destination(cow, 65536))));
            var last = lane.copy(new CopyOp(origin, 131072, 4096, List.of(new CopyOp.Destination(cow, 131072))));
            assertTrue(allSucceeded(first.get()));
            assertNotNull(failing.get().readError());
            assertTrue(allSucceeded(last.get()));
            assertTrue(Patterns.isZero(cow.contents().asSlice(69632, 8192)), "nothing after the failed read");
            assertNull(Patterns.difference(
                    data.contents().asSlice(131072, 4096), cow.contents().asSlice(131072, 4096)));
        }
    }

    @Test
    void aReadErrorWritesNothingAndIsReported() throws Exception {
        FaultyDevice origin = new FaultyDevice(filled("origin", 1 << 20));
        try (ChunkCopier copier = new ChunkCopier(1, 4096);
                MemoryDevice cow = new MemoryDevice("cow", 1 << 20)) {
            origin.failNth(FaultyDevice.Op.READ, 2);
            CopyResult r = copier.copy(new CopyOp(origin, 0, 16384, List.of(new CopyOp.Destination(cow, 0))))
                    .get();
            assertNotNull(r.readError());
            assertFalse(r.succeeded(0));
            assertTrue(r.readError().getMessage().contains("EIO"), r.readError().getMessage());
        }
    }

    @Test
    void aWriteErrorConcernsOnlyItsDestination() throws Exception {
        FaultyDevice bad = new FaultyDevice(new MemoryDevice("bad", 1 << 20));
        bad.failNth(FaultyDevice.Op.WRITE, 1);
        try (ChunkCopier copier = new ChunkCopier(1, 4096);
                MemoryDevice origin = filled("origin", 1 << 20);
                MemoryDevice good = new MemoryDevice("good", 1 << 20)) {
            CopyResult r = copier.copy(new CopyOp(
                            origin, 0, 4096, List.of(new CopyOp.Destination(bad, 0), new CopyOp.Destination(good, 0))))
                    .get();
            assertFalse(r.succeeded(0));
            assertTrue(r.succeeded(1));
            assertNull(Patterns.difference(
                    origin.contents().asSlice(0, 4096), good.contents().asSlice(0, 4096)));
        }
    }

    @Test
    void statsCountCopiesBytesAndFailuresPerDestination() throws Exception {
        FaultyDevice bad = new FaultyDevice(new MemoryDevice("bad", 1 << 20));
        FaultyDevice flaky = new FaultyDevice(filled("flaky", 1 << 20));
        try (ChunkCopier copier = new ChunkCopier(1, 4096);
                MemoryDevice origin = filled("origin", 1 << 20);
                MemoryDevice good = new MemoryDevice("good", 1 << 20)) {
            assertEquals(new ChunkCopier.Stats(0, 0, 0, 0, 0), copier.stats());
            // 8 KiB read in two pieces, written to two destinations.
            copier.copy(new CopyOp(
                            origin,
                            0,
                            8192,
                            List.of(new CopyOp.Destination(good, 0), new CopyOp.Destination(good, 65536))))
                    .get();
            assertEquals(new ChunkCopier.Stats(1, 8192, 16384, 0, 0), copier.stats());
            // The bad destination fails its first piece and is skipped for the second.
            bad.failNth(FaultyDevice.Op.WRITE, 1);
            copier.copy(new CopyOp(
                            origin, 0, 8192, List.of(new CopyOp.Destination(bad, 0), new CopyOp.Destination(good, 0))))
                    .get();
            assertEquals(new ChunkCopier.Stats(2, 16384, 24576, 0, 1), copier.stats());
            // A failed second read: the first piece was read and written, the op counts once.
            flaky.failNth(FaultyDevice.Op.READ, 2);
            copier.copy(new CopyOp(flaky, 0, 8192, List.of(new CopyOp.Destination(good, 0))))
                    .get();
            assertEquals(new ChunkCopier.Stats(3, 20480, 28672, 1, 1), copier.stats());
        }
    }

    @Test
    void manyConcurrentCopiesOnAFewThreads() throws Exception {
        try (ChunkCopier copier = new ChunkCopier(2, 4096);
                MemoryDevice origin = filled("origin", 1 << 20);
                MemoryDevice cow = new MemoryDevice("cow", 1 << 20)) {
            List<CopyOp> ops = new ArrayList<>();
            for (int i = 0; i < 256; i++) {
                ops.add(new CopyOp(origin, i * 4096L, 4096, List.of(new CopyOp.Destination(cow, (255 - i) * 4096L))));
            }
            List<CompletableFuture<CopyResult>> copies = new ArrayList<>();
            for (CopyOp op : ops) {
                copies.add(copier.copy(op));
            }
            for (CompletableFuture<CopyResult> copy : copies) {
                assertTrue(allSucceeded(copy.get()));
            }
            for (int i = 0; i < 256; i++) {
                assertNull(Patterns.difference(
                        origin.contents().asSlice(i * 4096L, 4096),
                        cow.contents().asSlice((255 - i) * 4096L, 4096)));
            }
        }
    }

    @Test
    void closeFinishesQueuedCopiesAndRefusesNewOnes() throws Exception {
        ChunkCopier copier = new ChunkCopier(1, 4096);
        try (MemoryDevice origin = filled("origin", 1 << 20);
                MemoryDevice cow = new MemoryDevice("cow", 1 << 20)) {
            var pending = copier.copy(new CopyOp(origin, 0, 65536, List.of(new CopyOp.Destination(cow, 0))));
            copier.close();
            copier.close();
            assertTrue(allSucceeded(pending.get()));
            ExecutionException e = assertThrows(
                    ExecutionException.class,
                    () -> copier.copy(new CopyOp(origin, 0, 4096, List.of(new CopyOp.Destination(cow, 0))))
                            .get());
            assertTrue(e.getCause() instanceof IllegalStateException);
        }
        assertThrows(IllegalArgumentException.class, () -> new ChunkCopier(0, 4096));
    }

    /**
     * close() waits, parked, for a copy running on its caller's thread (which holds a caller
     * buffer) before it frees the buffers, and wakes when that copy returns.
     */
    @Test
    void closeParksUntilACopyOnACallersThreadReturns() throws Exception {
        MemoryDevice data = filled("origin", 1 << 20);
        FaultyDevice origin = new FaultyDevice(data);
        FaultyDevice.Gate gate = origin.hold(r -> r.op() == FaultyDevice.Op.READ);
        ChunkCopier copier = new ChunkCopier(1, 4096);
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20)) {
            java.util.concurrent.atomic.AtomicReference<CopyResult> result =
                    new java.util.concurrent.atomic.AtomicReference<>();
            Thread caller = Thread.ofPlatform()
                    .start(() -> result.set(
                            copier.copyHere(new CopyOp(origin, 0, 4096, List.of(new CopyOp.Destination(cow, 0))))
                                    .join()));
            gate.awaitParked(1);
            Thread closer = Thread.ofPlatform().name("closer").start(() -> {
                try {
                    copier.close();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            long end = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
            while (closer.getState() != Thread.State.WAITING) {
                assertTrue(System.nanoTime() < end, "the closer did not park within 60 s: " + closer.getState());
                Thread.yield();
            }
            assertTrue(caller.isAlive());
            gate.open();
            caller.join();
            closer.join();
            assertTrue(allSucceeded(result.get()));
            assertNull(Patterns.difference(
                    data.contents().asSlice(0, 4096), cow.contents().asSlice(0, 4096)));
        }
    }
}
