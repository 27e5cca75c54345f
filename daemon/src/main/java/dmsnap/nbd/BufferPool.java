package dmsnap.nbd;

import dmsnap.ffm.IoMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The request buffers of the NBD server: aligned off-heap segments in power-of-two size classes
 * (4 KiB .. 32 MiB), reused, under a byte budget. A request waits for budget before its buffer
 * is taken, so the memory of all requests in flight over all connections is bounded however
 * many clients connect and whatever they send; freed buffers are kept for reuse up to a limit.
 *
 * <p>Buffers of 64 KiB and more live in huge pages ({@link IoMemory}): a 1 MiB O_DIRECT read
 * into scattered 4 KiB pages took up to twice as long (1 MiB reads through NBD: 1240 vs 500-1000
 * IOPS at queue depth 16, bench/RESULTS.md). Those of 2 MiB and more are mappings of their own;
 * smaller ones are cut from 2 MiB slabs, which are kept (never dropped one buffer at a time) while
 * their bytes stay within the retain limit; past it a buffer is plain memory.
 *
 * <p>Each plain segment and each mapping has its own shared arena (the buffer is filled by a
 * connection's reader, used by an I/O thread and sent by the connection's writer): the pool owns
 * them and closes them when it drops a buffer or is closed; slabs close when the pool is closed
 * and none of their buffers is in use.
 */
final class BufferPool implements AutoCloseable {
    static final int ALIGNMENT = 4096;
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25;
    /** From 64 KiB on, buffers live in huge pages. */
    private static final int HUGE_SHIFT = 16;
    private static final int SLAB_SHIFT = Long.numberOfTrailingZeros(IoMemory.HUGE_PAGE_BYTES);

    private final Semaphore budget;
    private final long budgetBytes;
    private final long retainBytes;
    private final AtomicLong retained = new AtomicLong();
    private final AtomicLong inUse = new AtomicLong();
    private final AtomicLong highWater = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Slabs made so far (guarded by itself); their bytes count against the retain limit. */
    private final List<IoMemory> slabs = new ArrayList<>();
    private final AtomicLong slabBytes = new AtomicLong();
    private final AtomicInteger slabBuffersInUse = new AtomicInteger();
    @SuppressWarnings("unchecked")
    private final ConcurrentLinkedDeque<Owned>[] free = new ConcurrentLinkedDeque[MAX_SHIFT - MIN_SHIFT + 1];

    /** A segment of one size class and what frees it: its arena, its mapping, or null for a slab's part. */
    private record Owned(AutoCloseable memory, MemorySegment segment) {
        boolean inSlab() {
            return memory == null;
        }

        void free() {
            if (memory instanceof IoMemory m) {
                m.close();
            } else if (memory instanceof Arena a) {
                a.close();
            }
        }
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
        if (owned == null) {
            owned = allocate(shift);
        } else if (!owned.inSlab()) {
            retained.addAndGet(-(1L << shift));
        }
        Buffer buffer = new Buffer(owned, bytes, quota);
        if (owned.inSlab()) {
            slabBuffersInUse.incrementAndGet();
            if (closed.get()) { // closed meanwhile: its slabs may be unmapped already
                buffer.release();
                throw new IllegalStateException("buffer pool is closed");
            }
        }
        return buffer;
    }

    /**
     * A new buffer of a size class: in a new slab (the rest of which goes to the free list), in a
     * mapping of its own, or plain memory (small classes, slabs full, or no mapping to be had).
     */
    private Owned allocate(int shift) {
        try {
            if (shift >= SLAB_SHIFT) {
                IoMemory m = IoMemory.map(1L << shift);
                return new Owned(m, m.segment());
            }
            if (shift >= HUGE_SHIFT && slabBytes.addAndGet(IoMemory.HUGE_PAGE_BYTES) <= retainBytes) {
                return fromNewSlab(shift);
            }
            if (shift >= HUGE_SHIFT) {
                slabBytes.addAndGet(-IoMemory.HUGE_PAGE_BYTES); // slabs are full: plain memory
            }
        } catch (IOException e) {
            // no mapping to be had (ENOMEM, a mapping limit): plain memory serves as well, slower
        }
        Arena arena = Arena.ofShared();
        return new Owned(arena, arena.allocate(1L << shift, ALIGNMENT));
    }

    /** A new slab (its bytes counted already) cut into buffers of the class: one returned, the rest freed. */
    private Owned fromNewSlab(int shift) throws IOException {
        IoMemory slab;
        try {
            slab = IoMemory.map(IoMemory.HUGE_PAGE_BYTES);
        } catch (IOException e) {
            slabBytes.addAndGet(-IoMemory.HUGE_PAGE_BYTES);
            throw e;
        }
        synchronized (slabs) {
            slabs.add(slab);
        }
        List<MemorySegment> parts = slab.slices(1 << (SLAB_SHIFT - shift), 1L << shift);
        for (MemorySegment part : parts.subList(1, parts.size())) {
            free[shift - MIN_SHIFT].addLast(new Owned(null, part));
        }
        return new Owned(null, parts.getFirst());
    }

    private void giveBack(Owned owned) {
        long size = owned.segment().byteSize();
        int shift = Long.numberOfTrailingZeros(size);
        if (owned.inSlab()) {
            free[shift - MIN_SHIFT].addFirst(owned); // kept with its slab
            slabBuffersInUse.decrementAndGet();
            closeSlabsIfIdle();
        } else if (!closed.get() && retained.addAndGet(size) <= retainBytes) {
            free[shift - MIN_SHIFT].addFirst(owned);
            if (closed.get() && free[shift - MIN_SHIFT].remove(owned)) {
                owned.free(); // the pool was closed meanwhile
            }
        } else {
            if (!closed.get()) {
                retained.addAndGet(-size);
            }
            owned.free();
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

    /** Frees the kept buffers; buffers still in use are freed when released (slabs with their last one). */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            for (ConcurrentLinkedDeque<Owned> list : free) {
                Owned o;
                while ((o = list.pollFirst()) != null) {
                    o.free();
                }
            }
            closeSlabsIfIdle();
        }
    }

    private void closeSlabsIfIdle() {
        if (!closed.get() || slabBuffersInUse.get() > 0) {
            return;
        }
        synchronized (slabs) {
            if (slabBuffersInUse.get() == 0) {
                slabs.forEach(IoMemory::close);
                slabs.clear();
            }
        }
    }
}
