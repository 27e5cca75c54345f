package dmsnap.nbd;

import dmsnap.ffm.IoMemory;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Semaphore;
import org.junit.jupiter.api.Test;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BufferPoolTest {
    private static final long HUGE = IoMemory.HUGE_PAGE_BYTES;
    private final Semaphore quota = BufferPool.quota(256L << 20);

    @Test
    void largeBuffersShareHugePagesAndComeBackForReuse() throws InterruptedException {
        try (BufferPool pool = new BufferPool(256L << 20, 64L << 20)) {
            BufferPool.Buffer a = pool.acquire(1 << 20, quota);
            BufferPool.Buffer b = pool.acquire(1 << 20, quota);
            long pageA = a.segment().address() / HUGE;
            assertEquals(0, a.segment().address() % (1 << 20));
            assertEquals(pageA, (a.segment().address() + (1 << 20) - 1) / HUGE, "a buffer crosses a huge page");
            assertEquals(pageA, b.segment().address() / HUGE, "the two halves of one slab");
            long addressA = a.segment().address();
            a.release();
            BufferPool.Buffer again = pool.acquire(700_000, quota); // same class: the freed half
            assertEquals(addressA, again.segment().address());
            assertEquals(700_000, again.segment().byteSize());
            BufferPool.Buffer big = pool.acquire(3 << 20, quota); // 4 MiB class: its own mapping
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
        try (BufferPool pool = new BufferPool(256L << 20, 4L << 20)) { // room for two slabs
            List<BufferPool.Buffer> held = new ArrayList<>();
            Set<Long> pages = new HashSet<>();
            for (int i = 0; i < 8; i++) {
                BufferPool.Buffer b = pool.acquire(1 << 20, quota);
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
        BufferPool pool = new BufferPool(64L << 20, 16L << 20);
        BufferPool.Buffer b = pool.acquire(256 << 10, quota);
        BufferPool.Buffer small = pool.acquire(4096, quota);
        pool.close();
        MemorySegment s = b.segment();
        s.set(JAVA_BYTE, 0, (byte) 1); // still mapped: in use
        assertEquals((byte) 1, s.get(JAVA_BYTE, 0));
        b.release();
        assertThrows(IllegalStateException.class, () -> s.get(JAVA_BYTE, 0), "unmapped with its last buffer");
        small.release();
        assertThrows(IllegalStateException.class, () -> pool.acquire(1 << 20, quota));
        assertNotEquals(0, pool.highWaterBytes());
    }
}
