package dmsnap.nbd;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The request buffers of the NBD server: aligned off-heap segments in power-of-two size classes
 * (4 KiB .. 32 MiB), reused, under a byte budget. A request waits for budget before its buffer
 * is taken, so the memory of all requests in flight over all connections is bounded however
 * many clients connect and whatever they send; freed buffers are kept for reuse up to a limit.
 *
 * <p>Each segment has its own shared arena (the buffer is filled by a connection's reader,
 * used by an I/O thread and sent by the connection's writer): the pool owns those arenas and
 * closes them when it drops a buffer or is closed.
 */
final class BufferPool implements AutoCloseable {
    static final int ALIGNMENT = 4096;
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25;

    private final Semaphore budget;
    private final long budgetBytes;
    private final long retainBytes;
    private final AtomicLong retained = new AtomicLong();
    private final AtomicLong inUse = new AtomicLong();
    private final AtomicLong highWater = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();
    @SuppressWarnings("unchecked")
    private final ConcurrentLinkedDeque<Owned>[] free = new ConcurrentLinkedDeque[MAX_SHIFT - MIN_SHIFT + 1];

    /** A segment of one size class and the arena it lives in. */
    private record Owned(Arena arena, MemorySegment segment) {
    }

    /** One request's buffer: {@link #segment()} is exactly the requested length. Release once. */
    final class Buffer {
        private final Owned owned;
        private final MemorySegment segment;
        private final Semaphore quota;
        private final AtomicBoolean released = new AtomicBoolean();

        private Buffer(Owned owned, long bytes, Semaphore quota) {
            this.owned = owned;
            this.segment = owned.segment().asSlice(0, bytes);
            this.quota = quota;
        }

        MemorySegment segment() {
            return segment;
        }

        void release() {
            if (released.compareAndSet(false, true)) {
                giveBack(owned);
                quota.release(permits(Long.numberOfTrailingZeros(owned.segment().byteSize())));
            }
        }
    }

    /**
     * @param budgetBytes the most bytes all buffers in use may take together (at least one largest buffer)
     * @param retainBytes how many bytes of freed buffers to keep for reuse
     */
    BufferPool(long budgetBytes, long retainBytes) {
        long atLeast = 1L << MAX_SHIFT;
        this.budgetBytes = Math.max(budgetBytes, atLeast);
        this.retainBytes = retainBytes;
        this.budget = new Semaphore(Math.toIntExact(this.budgetBytes >>> MIN_SHIFT), true);
        for (int i = 0; i < free.length; i++) {
            free[i] = new ConcurrentLinkedDeque<>();
        }
    }

    /** A quota for one user (a connection): {@code bytes} of buffers at most, taken before the pool's budget. */
    static Semaphore quota(long bytes) {
        return new Semaphore(Math.toIntExact(Math.max(bytes, 1L << MAX_SHIFT) >>> MIN_SHIFT));
    }

    /**
     * A buffer of {@code bytes} (1 .. 32 MiB), waiting while {@code quota} or the pool's budget is
     * spent; the buffer gives both back when released.
     */
    Buffer acquire(long bytes, Semaphore quota) throws InterruptedException {
        if (bytes <= 0 || bytes > 1L << MAX_SHIFT) {
            throw new IllegalArgumentException("buffer of " + bytes + " bytes");
        }
        int shift = shiftFor(bytes);
        quota.acquire(permits(shift));
        try {
            budget.acquire(permits(shift));
        } catch (InterruptedException e) {
            quota.release(permits(shift));
            throw e;
        }
        if (closed.get()) {
            budget.release(permits(shift));
            quota.release(permits(shift));
            throw new IllegalStateException("buffer pool is closed");
        }
        long now = inUse.addAndGet(1L << shift);
        highWater.accumulateAndGet(now, Math::max);
        Owned owned = free[shift - MIN_SHIFT].pollFirst();
        if (owned != null) {
            retained.addAndGet(-(1L << shift));
        } else {
            Arena arena = Arena.ofShared();
            owned = new Owned(arena, arena.allocate(1L << shift, ALIGNMENT));
        }
        return new Buffer(owned, bytes, quota);
    }

    private void giveBack(Owned owned) {
        long size = owned.segment().byteSize();
        int shift = Long.numberOfTrailingZeros(size);
        if (!closed.get() && retained.addAndGet(size) <= retainBytes) {
            free[shift - MIN_SHIFT].addFirst(owned);
            if (closed.get() && free[shift - MIN_SHIFT].remove(owned)) {
                owned.arena().close(); // the pool was closed meanwhile
            }
        } else {
            if (!closed.get()) {
                retained.addAndGet(-size);
            }
            owned.arena().close();
        }
        inUse.addAndGet(-size);
        budget.release(permits(shift));
    }

    private static int shiftFor(long bytes) {
        int shift = 64 - Long.numberOfLeadingZeros(bytes - 1);
        return Math.max(MIN_SHIFT, shift);
    }

    private static int permits(int shift) {
        return 1 << (shift - MIN_SHIFT);
    }

    /** Bytes of buffers in use now. */
    long inUseBytes() {
        return inUse.get();
    }

    /** The most bytes ever in use at once. */
    long highWaterBytes() {
        return highWater.get();
    }

    long budgetBytes() {
        return budgetBytes;
    }

    /** Frees the kept buffers; buffers still in use are freed when released. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            for (ConcurrentLinkedDeque<Owned> list : free) {
                Owned o;
                while ((o = list.pollFirst()) != null) {
                    o.arena().close();
                }
            }
        }
    }
}
