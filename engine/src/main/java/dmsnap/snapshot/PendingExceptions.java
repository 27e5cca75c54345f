package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreFullException;
import dmsnap.store.copy.CopyResult;
import dmsnap.target.DeviceResolver;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A snapshot's tracked chunks (dm-snap.c's {@code pending} exception table,
 * {@code pending_complete} and {@code tracked_chunk_hash}): the exceptions being made, whose copy
 * (or whole-chunk write) and commit are in progress, and the snapshot reads of origin chunks that
 * completing one of them must wait for.
 *
 * <p>In the cache modes that defer commits ({@link DeferredCommits}) an exception made by a
 * snapshot write becomes visible (in the complete table: reads and writes of the chunk go to the
 * COW) as soon as its data is written, and stays pending until its commit is durable: an origin
 * write to its chunk waits for that ({@link #decideForOrigin}), so the origin is never written
 * before the copy is safe. Exceptions made by origin writes are committed at once in every mode.
 *
 * <p>Locks: {@link #pending} is guarded by the snapshot's lock ({@link SnapshotState}'s monitor);
 * the tracked reads by their own monitor, taken inside it.
 */
final class PendingExceptions {
    private final SnapshotState state;
    private final DeviceResolver.Handle origin;
    private final DeviceResolver.Handle cow;
    private final DeferredCommits deferred;
    /**
     * The first copy (or whole-chunk write) that failed, for the invalidation line: set before its
     * commit, so whichever commit callback of that round invalidates (the first in allocation
     * order, maybe one whose copy succeeded) can say why.
     */
    private final AtomicReference<String> firstCopyFailure = new AtomicReference<>();

    private final Map<Long, Pending> pending = new HashMap<>();
    /** Snapshot reads (and passed-down discards) of chunks on the origin, in flight. */
    private final InFlightChunks trackedReads = new InFlightChunks();

    /**
     * An exception being made: its copy (or full-chunk write) and commit are in progress.
     * {@link #done}: it is in the complete table, or failed (what snapshot writes wait for);
     * {@link #durable}: its commit is durable, or failed (what origin writes wait for). The same
     * future unless commits are deferred.
     */
    static final class Pending {
        final PendingRemap remap;
        final CompletableFuture<Boolean> done = new CompletableFuture<>();
        final CompletableFuture<Boolean> durable;

        Pending(PendingRemap remap, boolean deferring) {
            this.remap = remap;
            this.durable = deferring ? new CompletableFuture<>() : done;
        }
    }

    /** What a chunk of the snapshot has, decided under the snapshot's lock. */
    sealed interface Decision permits Mapped, Waiting, Allocated, NoRoom, CowError {}

    /** The chunk has an exception: it lives in COW chunk {@code cowChunk}. */
    record Mapped(long cowChunk) implements Decision {}

    /** Another write is making the exception (remap {@code sequence}): wait for it. */
    record Waiting(CompletableFuture<Boolean> done, long sequence) implements Decision {}

    /** This caller makes the exception (its COW chunk is allocated). */
    record Allocated(Pending pending) implements Decision {}

    /** The COW is full ({@link StoreFullException}; {@code reason}: the store's words). */
    record NoRoom(String reason) implements Decision {}

    /**
     * Allocating failed for another reason than a full COW: an I/O error of the COW (its size
     * could not be read), which invalidates like a failed copy, never overflows
     * ({@code reason}: the COW and the errno).
     */
    record CowError(String reason) implements Decision {}

    PendingExceptions(
            SnapshotState state, DeviceResolver.Handle origin, DeviceResolver.Handle cow, DeferredCommits deferred) {
        this.state = state;
        this.origin = origin;
        this.cow = cow;
        this.deferred = deferred;
    }

    /**
     * Decides {@code chunk} for a snapshot write; allocates its exception when it has none and none
     * is being made. The caller holds the snapshot's lock (so a span's allocations are consecutive).
     */
    Decision decide(long chunk) {
        List<Decision> out = new ArrayList<>(1);
        decide(chunk, 1, out);
        return out.getFirst();
    }

    /**
     * {@link #decide} of the chunks {@code first .. first + count - 1} in order, into {@code out};
     * a row of chunks with no exception, made or being made, is allocated in one store call (one
     * reading of the COW's size for a write's new chunks). Stops after a {@link NoRoom} or
     * {@link CowError}, the last decision then. The caller holds the snapshot's lock.
     */
    void decide(long first, int count, List<Decision> out) {
        assert Thread.holdsLock(state);
        long end = first + count;
        for (long chunk = first; chunk < end; ) {
            long mapped = state.complete().lookup(chunk);
            Pending other = mapped >= 0 ? null : pending.get(chunk);
            if (mapped >= 0 || other != null) {
                out.add(mapped >= 0 ? new Mapped(mapped) : new Waiting(other.done, other.remap.sequence()));
                chunk++;
                continue;
            }
            long rowEnd = chunk + 1;
            while (rowEnd < end && state.complete().lookup(rowEnd) < 0 && !isPending(rowEnd)) {
                rowEnd++;
            }
            int made = allocate(chunk, (int) (rowEnd - chunk), out);
            if (made == 0) {
                return;
            }
            chunk += made;
        }
    }

    /**
     * Decides {@code chunk} for an origin write (dm-snap.c's {@code __origin_write}: the pending
     * table first): an exception still pending, visible or not, is waited for until its commit is
     * durable (and until the snapshot reads of the origin chunk it waits for have drained).
     */
    Decision decideForOrigin(long chunk) {
        assert Thread.holdsLock(state);
        Pending other = pending.get(chunk);
        if (other != null) {
            return new Waiting(other.durable, other.remap.sequence());
        }
        long mapped = state.complete().lookup(chunk);
        if (mapped >= 0) {
            return new Mapped(mapped);
        }
        return allocate(chunk);
    }

    private Decision allocate(long chunk) {
        List<Decision> out = new ArrayList<>(1);
        allocate(chunk, 1, out);
        return out.getFirst();
    }

    /**
     * Allocates exceptions for up to {@code count} chunks from {@code first} (none of them has one)
     * in one store call, adding an {@link Allocated} for each made, or else one {@link NoRoom} or
     * {@link CowError}, to {@code out}; returns how many were made (0 after a failure).
     */
    private int allocate(long first, int count, List<Decision> out) {
        List<PendingRemap> remaps;
        try {
            remaps = state.store().prepare(first, count);
        } catch (StoreFullException full) {
            out.add(new NoRoom(full.getMessage()));
            return 0;
        } catch (IOException e) {
            out.add(new CowError("COW " + cow.device().name() + ": " + e.getMessage()));
            return 0;
        }
        for (PendingRemap remap : remaps) {
            Pending mine = new Pending(remap, deferred.defers());
            pending.put(remap.oldChunk(), mine);
            out.add(new Allocated(mine));
        }
        return remaps.size();
    }

    /** Why destination {@code index} of a copy did not get its data, naming the device; null when it did. */
    String copyFailure(CopyResult result, Throwable failure, int index) {
        if (failure != null) {
            return "COW " + cow.device().name() + ": the copy failed: " + failure;
        }
        if (result.readError() != null) {
            return "origin " + origin.device().name() + ": "
                    + result.readError().getMessage();
        }
        Exception write = result.writeErrors().get(index);
        return write == null ? null : "COW " + cow.device().name() + ": " + write.getMessage();
    }

    /**
     * Commits {@code p}, made by a snapshot write, whose copy (or write) succeeded unless
     * {@code failure} says why not. When commits are deferred, a good copy is visible at once
     * and durable later; a failed one is committed at once, as in every mode (it invalidates).
     */
    void commit(Pending p, String failure) {
        commit(List.of(p), failure);
    }

    /**
     * {@link #commit(Pending, String)} of {@code run}: the exceptions of consecutive chunks one
     * snapshot write made with one device write of their data (consecutive sequence numbers), in
     * one hold of each lock: a 1 MiB write of 4 KiB chunks makes 256 of them.
     */
    void commit(List<Pending> run, String failure) {
        if (failure != null || !deferred.defers() || !state.isValid()) {
            commitNow(run, failure);
            return;
        }
        long firstChunk = run.getFirst().remap.oldChunk();
        assert run.getLast().remap.oldChunk() == firstChunk + run.size() - 1 : "a run of consecutive chunks";
        synchronized (state) {
            for (Pending p : run) {
                state.complete().insert(p.remap.oldChunk(), p.remap.newChunk());
            }
        }
        // Reads that start from now on find the exceptions and go to the COW; those of the origin
        // chunks in flight must end before an origin write may overwrite them (it waits for durable).
        trackedReads.awaitNoneUninterruptibly(firstChunk, run.size());
        for (Pending p : run) {
            p.done.complete(true);
        }
        ExceptionStore s = state.store();
        long deferredAt = System.nanoTime();
        long firstSequence = run.getFirst().remap.sequence();
        s.commitDeferred(remaps(run), true, (remap, ok) -> {
            state.commits().committed(s, System.nanoTime() - deferred.dueNanos(deferredAt), ok);
            durable(run.get((int) (remap.sequence() - firstSequence)), ok, s);
        });
        deferred.deferred();
    }

    /**
     * Commits {@code p}, made by an origin write's copy-out, at once in every mode (the origin
     * write waits for it); when commits are deferred, the deferred ones before it go along.
     */
    void commitCopyOut(Pending p, String failure) {
        commitNow(List.of(p), failure);
        if (deferred.defers()) {
            deferred.hurry(p.remap.sequence());
        }
    }

    /** The kernel's commit of {@code run}: durable (group-committed) before each exception completes. */
    private void commitNow(List<Pending> run, String failure) {
        if (failure != null) {
            firstCopyFailure.compareAndSet(null, failure);
        }
        ExceptionStore s = state.store();
        long requested = System.nanoTime();
        long firstSequence = run.getFirst().remap.sequence();
        s.commit(remaps(run), failure == null, (remap, ok) -> {
            state.commits().committed(s, System.nanoTime() - requested, ok);
            finish(run.get((int) (remap.sequence() - firstSequence)), ok, s);
        });
    }

    private static List<PendingRemap> remaps(List<Pending> run) {
        List<PendingRemap> remaps = new ArrayList<>(run.size());
        for (Pending p : run) {
            remaps.add(p.remap);
        }
        return remaps;
    }

    /** pending_complete: on success the remap becomes visible, after reads of the chunk drain. */
    private void finish(Pending p, boolean ok, ExceptionStore committedBy) {
        long chunk = p.remap.oldChunk();
        if (!ok || !state.isValid()) {
            synchronized (state) {
                pending.remove(chunk, p);
            }
            invalidateFor(committedBy);
            p.done.complete(false);
            p.durable.complete(false);
            return;
        }
        synchronized (state) {
            state.complete().insert(chunk, p.remap.newChunk());
        }
        // An origin write released now could overwrite data a snapshot read is still fetching;
        // reads that start from now on find the exception and go to the COW.
        trackedReads.awaitNoneUninterruptibly(chunk, 1);
        synchronized (state) {
            pending.remove(chunk, p);
        }
        p.done.complete(true);
        p.durable.complete(true);
    }

    /** A deferred commit of a visible exception is durable ({@code ok}) or failed: origin writes may go on. */
    private void durable(Pending p, boolean ok, ExceptionStore committedBy) {
        synchronized (state) {
            pending.remove(p.remap.oldChunk(), p);
        }
        if (!ok) {
            invalidateFor(committedBy);
        }
        p.durable.complete(ok && state.isValid());
    }

    /** A commit failed: the snapshot is invalidated with the first reason known. */
    private void invalidateFor(ExceptionStore committedBy) {
        String storeFailure = committedBy.failure();
        String copy = firstCopyFailure.get();
        state.invalidate(
                InvalidationCause.IO_ERROR,
                copy != null
                        ? copy
                        : storeFailure != null ? "COW " + cow.device().name() + ": " + storeFailure : null);
    }

    /**
     * Whether an exception of {@code chunk} is being made (its copy or commit in flight); the
     * caller holds the snapshot's lock. Looks only when some is: most reads box no chunk number.
     */
    boolean isPending(long chunk) {
        assert Thread.holdsLock(state);
        return !pending.isEmpty() && pending.containsKey(chunk);
    }

    /** A read of {@code chunk} on the origin starts; the caller holds the snapshot's lock. */
    void trackRead(long chunk) {
        trackedReads.track(chunk);
    }

    /** A read tracked by {@link #trackRead} is done. */
    void untrackRead(long chunk) {
        trackedReads.untrack(chunk);
    }

    /** Waits for the exceptions being made now (close). */
    void awaitAll() {
        List<Pending> waiting;
        synchronized (state) {
            waiting = List.copyOf(pending.values());
        }
        for (Pending p : waiting) {
            p.done.join();
        }
    }
}
