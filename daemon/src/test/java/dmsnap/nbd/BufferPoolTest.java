package dmsnap.nbd;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.IoMemory;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class BufferPoolTest {
    private static final long HUGE = IoMemory.HUGE_PAGE_BYTES;

    @Test
    void largeBuffersShareHugePagesAndComeBackForReuse() throws InterruptedException {
        try (BufferPool pool = new BufferPool(256L << 20, 64L << 20, 1)) {
            BufferPool.Share share = pool.openShare();
            BufferPool.Buffer a = acquire(share, 1 << 20);
            BufferPool.Buffer b = acquire(share, 1 << 20);
            long pageA = a.segment().address() / HUGE;
            assertEquals(0, a.segment().address() % (1 << 20));
            assertEquals(pageA, (a.segment().address() + (1 << 20) - 1) / HUGE, "a buffer crosses a huge page");
            assertEquals(pageA, b.segment().address() / HUGE, "the two halves of one slab");
            long addressA = a.segment().address();
            a.release();
            BufferPool.Buffer again = acquire(share, 700_000); // same class: the freed half
            assertEquals(addressA, again.segment().address());
            assertEquals(700_000, again.segment().byteSize());
            BufferPool.Buffer big = acquire(share, 3 << 20); // 4 MiB class: its own mapping
            assertEquals(0, big.segment().address() % HUGE);
            big.segment().set(JAVA_BYTE, (3 << 20) - 1, (byte) 9);
            assertEquals(6L << 20, pool.inUseBytes()); // b, again (1 MiB classes) and big (4 MiB)
            again.release();
            b.release();
            big.release();
            assertEquals(0, pool.inUseBytes());
        }
    }

    @Test
    void slabsStopAtTheRetainLimitAndPlainMemoryServesBeyond() throws InterruptedException {
        try (BufferPool pool = new BufferPool(256L << 20, 4L << 20, 1)) { // room for two slabs
            BufferPool.Share share = pool.openShare();
            List<BufferPool.Buffer> held = new ArrayList<>();
            Set<Long> pages = new HashSet<>();
            for (int i = 0; i < 8; i++) {
                BufferPool.Buffer b = acquire(share, 1 << 20);
                b.segment().fill((byte) i);
                held.add(b);
                pages.add(b.segment().address() / HUGE);
            }
            assertTrue(pages.size() >= 3, "the buffers past two slabs are plain memory elsewhere");
            for (int i = 0; i < 8; i++) {
                assertEquals((byte) i, held.get(i).segment().get(JAVA_BYTE, 12345));
            }
            held.forEach(BufferPool.Buffer::release);
            assertEquals(0, pool.inUseBytes());
        }
    }

    @Test
    void aSlabOutlivesThePoolUntilItsLastBufferIsReleased() throws InterruptedException {
        BufferPool pool = new BufferPool(64L << 20, 16L << 20, 1);
        BufferPool.Share share = pool.openShare();
        BufferPool.Buffer b = acquire(share, 256 << 10);
        BufferPool.Buffer small = acquire(share, 4096);
        pool.close();
        MemorySegment s = b.segment();
        s.set(JAVA_BYTE, 0, (byte) 1); // still mapped: in use
        assertEquals((byte) 1, s.get(JAVA_BYTE, 0));
        b.release();
        assertThrows(IllegalStateException.class, () -> s.get(JAVA_BYTE, 0), "unmapped with its last buffer");
        small.release();
        assertThrows(IllegalStateException.class, () -> share.tryAcquire(1 << 20));
        assertNotEquals(0, pool.highWaterBytes());
    }

    /** A buffer the share must get at once (the tests of the free lists and slabs have room). */
    private static BufferPool.Buffer acquire(BufferPool.Share share, long bytes) {
        BufferPool.Buffer b = share.tryAcquire(bytes);
        assertNotNull(b, bytes + " bytes");
        return b;
    }

    @Test
    void theBudgetIsAReserveForEveryShareAndASharedRest() {
        try (BufferPool pool = new BufferPool(128L << 20, 0, 64)) {
            assertEquals(1 << 20, pool.reserveBytes(), "half the budget over 64 shares, at most 1 MiB");
            assertEquals(64L << 20, pool.sharedBytes());
        }
        try (BufferPool pool = new BufferPool(512L << 20, 0, 1024)) { // the daemon's defaults
            assertEquals(256 << 10, pool.reserveBytes());
            assertEquals(256L << 20, pool.sharedBytes());
        }
        try (BufferPool pool = new BufferPool(1L << 20, 0, 4096)) { // too small: raised
            assertEquals(4096, pool.reserveBytes());
            assertEquals(32L << 20, pool.sharedBytes(), "room for one largest buffer beside the reserves");
            assertEquals((32L << 20) + 4096L * 4096, pool.budgetBytes());
        }
    }

    /**
     * A share takes its reserve first, then the shared budget up to its fair share, and never
     * waits for it; when neither has room it waits for its own reserve, which only its own
     * buffers give back: another share's buffers do not hold it up.
     */
    @Test
    void aShareTakesItsReserveThenItsFairShareAndWaitsOnlyForItsOwnBuffers() throws Exception {
        try (BufferPool pool = new BufferPool(128L << 20, 0, 64)) {
            BufferPool.Share a = pool.openShare();
            BufferPool.Share b = pool.openShare();
            assertEquals(32L << 20, pool.fairShareBytes(), "64 MiB shared by two");
            BufferPool.Buffer aSmall = acquire(a, 1 << 20); // its reserve
            BufferPool.Buffer aLarge = acquire(a, 32 << 20); // the shared budget
            assertEquals(33L << 20, pool.inUseBytes());
            assertNull(a.tryAcquire(4096), "reserve full, fair share taken");
            BufferPool.Buffer bLarge = acquire(b, 32 << 20);
            assertNull(b.tryAcquire(2 << 20), "larger than the reserve, and the shared budget is spent");
            BufferPool.Buffer bSmall = acquire(b, 700_000); // its reserve still has room
            // b waits for its reserve; a's buffers coming back do not matter to it, its own do.
            CompletableFuture<BufferPool.Buffer> waiting = CompletableFuture.supplyAsync(() -> {
                try {
                    return b.acquireReserved(1 << 20);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            });
            aSmall.release();
            aLarge.release();
            bSmall.release();
            BufferPool.Buffer bAgain = waiting.get(60, TimeUnit.SECONDS);
            assertEquals(1 << 20, bAgain.segment().byteSize());
            assertThrows(IllegalArgumentException.class, () -> b.acquireReserved(2 << 20), "larger than the reserve");
            bAgain.release();
            bLarge.release();
            assertEquals(0, pool.inUseBytes());
            assertTrue(pool.highWaterBytes() <= pool.budgetBytes());
            a.close();
            b.close();
        }
    }

    @Test
    void theFairShareShrinksAsSharesOpenButNotBelowOneLargestBuffer() {
        try (BufferPool pool = new BufferPool(1L << 30, 0, 4)) {
            long shared = pool.sharedBytes();
            List<BufferPool.Share> open = new ArrayList<>();
            open.add(pool.openShare());
            assertEquals(shared, pool.fairShareBytes());
            for (int i = 2; i <= 4; i++) {
                open.add(pool.openShare());
                assertEquals(shared / i, pool.fairShareBytes());
            }
            assertThrows(IllegalStateException.class, pool::openShare, "four shares at most");
            open.removeLast().close();
            assertEquals(shared / 3, pool.fairShareBytes());
            open.add(pool.openShare());
            open.forEach(BufferPool.Share::close);
        }
        try (BufferPool pool = new BufferPool(128L << 20, 0, 64)) {
            for (int i = 0; i < 10; i++) {
                pool.openShare();
            }
            assertEquals(32L << 20, pool.fairShareBytes(), "one largest buffer, though 64 MiB over 10 is less");
        }
    }
}
