package dmsnap.nbd;

import dmsnap.ffm.IoMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The request buffers of the NBD server: aligned off-heap segments in power-of-two size classes
 * (4 KiB .. 32 MiB), reused, under a byte budget, so that the memory of all requests in flight
 * over all connections is bounded however many clients connect and whatever they send; freed
 * buffers are kept for reuse up to a limit.
 *
 * <p>How the budget is shared. A buffer is held from the request until its reply has gone into
 * the socket, so a client that never reads its replies holds its buffers until the watchdog
 * closes it; a client cannot be made to give them back sooner. Had connections waited for each
 * other's buffers, a few such clients would stall every other one for the timeout (eight did,
 * with one budget and a 64 MiB quota per connection). So no connection ever waits for a buffer
 * another connection holds:
 * <ul>
 * <li>Each connection has a {@link Share}: a <em>reserve</em> of its own ({@link #reserveBytes()},
 *     a power of two, set aside for every possible connection: {@code maxShares} of them take half
 *     the budget at most), and a claim on the <em>shared</em> rest of the budget.
 * <li>A buffer comes from the reserve when it fits and the reserve has room, else from the shared
 *     budget if it has room now and the connection stays within its fair share
 *     ({@link #fairShareBytes()}: the shared budget over the connections open, never less than one
 *     largest request); it never waits for the shared budget.
 * <li>Otherwise the connection waits for its own reserve only, and does the request with it: in
 *     pieces of the reserve if it is larger (the caller streams it). Its reserve comes back when
 *     its own replies have been sent, so a connection waits only for its own client.
 * </ul>
 * Clients that do not read their replies can hold the shared budget, each within its fair share,
 * and their own reserves; every other connection goes on with its reserve, more slowly. A
 * connection that waits for its reserve stops reading requests: the back-pressure falls on the
 * client that does not read, not on the others.
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

    /** The largest reserve; more would rarely be used (reads and writes of 1 MiB are the common large ones). */
    static final long MAX_RESERVE_BYTES = 1 << 20;

    private final long budgetBytes;
    private final long reserveBytes;
    private final int maxShares;
    private final long sharedBytes;
    /** The shared budget in permits of 4 KiB; never waited for, only tried. */
    private final Semaphore shared;

    private final AtomicInteger shares = new AtomicInteger();
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
        private final Share share;
        private final boolean reserved;
        private final AtomicBoolean released = new AtomicBoolean();

        private Buffer(Owned owned, long bytes, Share share, boolean reserved) {
            this.owned = owned;
            this.segment = owned.segment().asSlice(0, bytes);
            this.share = share;
            this.reserved = reserved;
        }

        MemorySegment segment() {
            return segment;
        }

        void release() {
            if (released.compareAndSet(false, true)) {
                giveBack(owned);
                share.giveBack(Long.numberOfTrailingZeros(owned.segment().byteSize()), reserved);
            }
        }
    }

    /**
     * One connection's part of the budget (see the class comment): its reserve, and what it holds
     * of the shared budget. Buffers are taken by one thread (the connection's reader) and given
     * back by any.
     */
    final class Share implements AutoCloseable {
        private final Semaphore reserve = new Semaphore(permits(shiftFor(reserveBytes)));
        private final AtomicLong sharedHeld = new AtomicLong();
        private final AtomicBoolean closed = new AtomicBoolean();

        private Share() {}

        /**
         * A buffer of {@code bytes} (1 .. 32 MiB) now: from the reserve if it fits there, else from
         * the shared budget within the fair share; null if neither has room.
         */
        Buffer tryAcquire(long bytes) {
            int shift = checkedShift(bytes);
            long size = 1L << shift;
            if (size <= reserveBytes && reserve.tryAcquire(permits(shift))) {
                return take(shift, bytes, this, true);
            }
            if (sharedHeld.get() + size <= fairShareBytes() && shared.tryAcquire(permits(shift))) {
                sharedHeld.addAndGet(size);
                return take(shift, bytes, this, false);
            }
            return null;
        }

        /**
         * A buffer of {@code bytes} (at most {@link #reserveBytes()}) from the reserve, waiting while
         * this share's own buffers take it: only this connection's requests and replies give it back.
         */
        Buffer acquireReserved(long bytes) throws InterruptedException {
            int shift = checkedShift(bytes);
            if (1L << shift > reserveBytes) {
                throw new IllegalArgumentException(bytes + " bytes do not fit a reserve of " + reserveBytes);
            }
            reserve.acquire(permits(shift));
            return take(shift, bytes, this, true);
        }

        /** The largest buffer {@link #acquireReserved} gives. */
        long reserveBytes() {
            return reserveBytes;
        }

        private void giveBack(int shift, boolean reserved) {
            if (reserved) {
                reserve.release(permits(shift));
            } else {
                sharedHeld.addAndGet(-(1L << shift));
                shared.release(permits(shift));
            }
        }

        /**
         * Gives the share up, once its buffers are back (its connection has waited for its requests
         * and replies first, so this does not wait): a new share may take its reserve.
         */
        @Override
        public void close() {
            if (closed.compareAndSet(false, true)) {
                reserve.acquireUninterruptibly(permits(shiftFor(reserveBytes)));
                shares.decrementAndGet();
            }
        }
    }

    /**
     * @param budgetBytes the most bytes all buffers in use may take together (raised if needed to
     *                    at least one largest buffer in the shared budget, beside the reserves)
     * @param retainBytes how many bytes of freed buffers to keep for reuse
     * @param maxShares   the most shares (connections) open at once; each has a reserve
     */
    BufferPool(long budgetBytes, long retainBytes, int maxShares) {
        if (maxShares < 1) {
            throw new IllegalArgumentException("maxShares " + maxShares);
        }
        this.maxShares = maxShares;
        this.reserveBytes = Math.min(
                MAX_RESERVE_BYTES,
                Math.max(1L << MIN_SHIFT, Long.highestOneBit(Math.max(1, budgetBytes / 2 / maxShares))));
        this.budgetBytes = Math.max(budgetBytes, maxShares * reserveBytes + (1L << MAX_SHIFT));
        this.sharedBytes = this.budgetBytes - maxShares * reserveBytes;
        this.retainBytes = retainBytes;
        this.shared = new Semaphore(Math.toIntExact(sharedBytes >>> MIN_SHIFT));
        for (int i = 0; i < free.length; i++) {
            free[i] = new ConcurrentLinkedDeque<>();
        }
    }

    /** A share for a new connection; at most {@code maxShares} are open at once. */
    Share openShare() {
        if (shares.incrementAndGet() > maxShares) {
            shares.decrementAndGet();
            throw new IllegalStateException("more than " + maxShares + " buffer shares");
        }
        return new Share();
    }

    /**
     * How much of the shared budget one connection may hold: an equal part for each connection
     * open, but at least one largest buffer (so that a request of the largest payload can take it
     * when it is free), and so at most the whole shared budget.
     */
    long fairShareBytes() {
        return Math.max(1L << MAX_SHIFT, sharedBytes / Math.max(1, shares.get()));
    }

    private static int checkedShift(long bytes) {
        if (bytes <= 0 || bytes > 1L << MAX_SHIFT) {
            throw new IllegalArgumentException("buffer of " + bytes + " bytes");
        }
        return shiftFor(bytes);
    }

    /** A buffer of the size class {@code shift}, its budget (reserve or shared) already taken. */
    private Buffer take(int shift, long bytes, Share share, boolean reserved) {
        if (closed.get()) {
            share.giveBack(shift, reserved);
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
        Buffer buffer = new Buffer(owned, bytes, share, reserved);
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

    /** Each share's reserve: a power of two from 4 KiB to {@link #MAX_RESERVE_BYTES}. */
    long reserveBytes() {
        return reserveBytes;
    }

    /** The budget less every possible share's reserve. */
    long sharedBytes() {
        return sharedBytes;
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
