package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreFullException;
import dmsnap.store.copy.CopyResult;
import dmsnap.target.DeviceResolver;
import java.io.IOException;
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
 * <p>Locks: {@link #pending} is guarded by the snapshot's lock ({@link SnapshotState}'s monitor);
 * the tracked reads by their own monitor, taken inside it.
 */
final class PendingExceptions {
    private final SnapshotState state;
    private final DeviceResolver.Handle origin;
    private final DeviceResolver.Handle cow;
    /**
     * The first copy (or whole-chunk write) that failed, for the invalidation line: set before its
     * commit, so whichever commit callback of that round invalidates (the first in allocation
     * order, maybe one whose copy succeeded) can say why.
     */
    private final AtomicReference<String> firstCopyFailure = new AtomicReference<>();

    private final Map<Long, Pending> pending = new HashMap<>();
    /** Snapshot reads (and passed-down discards) of chunks on the origin, in flight. */
    private final InFlightChunks trackedReads = new InFlightChunks();

    /** An exception being made: its copy (or full-chunk write) and commit are in progress. */
    static final class Pending {
        final PendingRemap remap;
        final CompletableFuture<Boolean> done = new CompletableFuture<>();

        Pending(PendingRemap remap) {
            this.remap = remap;
        }
    }

    /** What a chunk of the snapshot has, decided under the snapshot's lock. */
    sealed interface Decision permits Mapped, Waiting, Allocated, NoRoom, CowError {}

    /** The chunk has an exception: it lives in COW chunk {@code cowChunk}. */
    record Mapped(long cowChunk) implements Decision {}

    /** Another write is making the exception: wait for it. */
    record Waiting(CompletableFuture<Boolean> done) implements Decision {}

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

    PendingExceptions(SnapshotState state, DeviceResolver.Handle origin, DeviceResolver.Handle cow) {
        this.state = state;
        this.origin = origin;
        this.cow = cow;
    }

    /**
     * Decides {@code chunk}; allocates its exception when it has none and none is being made. The
     * caller holds the snapshot's lock (so a span's allocations are consecutive).
     */
    Decision decide(long chunk) {
        assert Thread.holdsLock(state);
        long mapped = state.complete().lookup(chunk);
        if (mapped >= 0) {
            return new Mapped(mapped);
        }
        Pending other = pending.get(chunk);
        if (other != null) {
            return new Waiting(other.done);
        }
        PendingRemap remap;
        try {
            remap = state.store().prepare(chunk);
        } catch (StoreFullException full) {
            return new NoRoom(full.getMessage());
        } catch (IOException e) {
            return new CowError("COW " + cow.device().name() + ": " + e.getMessage());
        }
        Pending mine = new Pending(remap);
        pending.put(chunk, mine);
        return new Allocated(mine);
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

    /** Commits {@code p}, whose copy succeeded unless {@code failure} says why not. */
    void commit(Pending p, String failure) {
        if (failure != null) {
            firstCopyFailure.compareAndSet(null, failure);
        }
        ExceptionStore s = state.store();
        long requested = System.nanoTime();
        s.commit(p.remap, failure == null, (remap, ok) -> {
            state.commits().committed(s, System.nanoTime() - requested, ok);
            finish(p, ok, s);
        });
    }

    /** pending_complete: on success the remap becomes visible, after reads of the chunk drain. */
    private void finish(Pending p, boolean ok, ExceptionStore committedBy) {
        long chunk = p.remap.oldChunk();
        if (!ok || !state.isValid()) {
            synchronized (state) {
                pending.remove(chunk);
            }
            String storeFailure = committedBy.failure();
            String copy = firstCopyFailure.get();
            state.invalidate(
                    InvalidationCause.IO_ERROR,
                    copy != null
                            ? copy
                            : storeFailure != null ? "COW " + cow.device().name() + ": " + storeFailure : null);
            p.done.complete(false);
            return;
        }
        synchronized (state) {
            state.complete().insert(chunk, p.remap.newChunk());
        }
        // An origin write released now could overwrite data a snapshot read is still fetching;
        // reads that start from now on find the exception and go to the COW.
        trackedReads.awaitNoneUninterruptibly(chunk);
        synchronized (state) {
            pending.remove(chunk);
        }
        p.done.complete(true);
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
