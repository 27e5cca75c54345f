package dmsnap.snapshot;

import dmsnap.device.BackingDevices;
import dmsnap.device.IoRequest;
import dmsnap.device.MapOrder;
import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionTable;
import dmsnap.store.PendingRemap;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One snapshot instance ({@code struct dm_snapshot}): its origin and COW, exception store and
 * complete table, pending exceptions and tracked reads, and the valid / overflowed / active
 * flags. Implements the copy-out an origin write triggers and the snapshot device's I/O; for a
 * snapshot-merge instance also the merging device's I/O (spec 9.3) and the merge step's view of
 * it: the chunks being merged, the writes tracked and queued around them (spec 9.2).
 *
 * <p>Locks: this object's monitor guards {@link #pending}, {@link #trackedReads},
 * {@link #trackedWrites}, the merge-step fields and the flags; no I/O happens while holding it,
 * and the only wait under it is the merge step's for tracked writes ({@link Object#wait()}).
 */
public final class Snapshot {
    private static final Logger log = LoggerFactory.getLogger(Snapshot.class);

    private final BackingDevices.Handle origin;
    private final BackingDevices.Handle cow;
    private final ChunkCopier copier;
    private final long lengthSectors;
    private final Runnable event;
    private final java.util.function.BooleanSupplier deviceSuspended;
    private final String deviceName;
    private final CommitObserver commits;
    /** "PO" in this instance's own table: a store handed over to it takes this flag. */
    private final boolean tableOverflow;
    /** Swapped by a handover, under the origin's I/O lock with this device suspended. */
    private volatile ExceptionStore store;
    private volatile ExceptionTable complete;
    private volatile boolean valid = true;
    private volatile boolean overflowed;
    private volatile boolean active;
    private final Map<Long, Pending> pending = new HashMap<>();
    private final Map<Long, Integer> trackedReads = new HashMap<>();
    /** A snapshot-merge instance: origin writes never copy into it (spec 5.1). */
    private final boolean merging;
    private volatile Merger merger;
    /** In memory only, never cleared for this instance, not handed over (spec 9.2). */
    private volatile boolean mergeFailed;
    /** Writes on the merging device remapped to the COW, in flight, by chunk (spec 4, 9.3). */
    private final Map<Long, Integer> trackedWrites = new HashMap<>();
    /** The chunks of the merge step in progress ({@code first_merging_chunk}, {@code num_merging_chunks}). */
    private long firstMergingChunk;
    private long mergingChunks;
    /** Completes when the step in progress has committed (true) or failed (false): queued writes wait on it. */
    private CompletableFuture<Boolean> mergeStep;

    /** An exception being made: its copy (or full-chunk write) and commit are in progress. */
    static final class Pending {
        final PendingRemap remap;
        final CompletableFuture<Boolean> done = new CompletableFuture<>();

        Pending(PendingRemap remap) {
            this.remap = remap;
        }
    }

    Snapshot(String deviceName, BackingDevices.Handle origin, BackingDevices.Handle cow, ExceptionStore store,
             ChunkCopier copier, long lengthSectors, Runnable event, java.util.function.BooleanSupplier deviceSuspended,
             CommitObserver commits, boolean merging) {
        this.merging = merging;
        this.deviceName = deviceName;
        this.commits = commits;
        this.deviceSuspended = deviceSuspended;
        this.tableOverflow = store.overflowSupported();
        this.origin = origin;
        this.cow = cow;
        this.store = store;
        this.copier = copier;
        this.lengthSectors = lengthSectors;
        this.event = event;
        this.complete = new ExceptionTable();
    }

    BackingDevices.Identity originIdentity() {
        return origin.identity();
    }

    BackingDevices.Identity cowIdentity() {
        return cow.identity();
    }

    BackingDevices.Handle originHandle() {
        return origin;
    }

    BackingDevices.Handle cowHandle() {
        return cow;
    }

    ExceptionStore store() {
        return store;
    }

    ExceptionTable completeTable() {
        return complete;
    }

    long lengthSectors() {
        return lengthSectors;
    }

    long chunkSectors() {
        return store.chunkSize().sectors();
    }

    /** For the registry's order. */
    long sortChunkSectors() {
        return chunkSectors();
    }

    boolean isValid() {
        return valid;
    }

    boolean isOverflowed() {
        return overflowed;
    }

    boolean isActive() {
        return active;
    }

    boolean isMerging() {
        return merging;
    }

    /** The merge loop of a snapshot-merge instance (null for a plain snapshot). */
    Merger merger() {
        return merger;
    }

    void attachMerger(Merger m) {
        merger = m;
    }

    boolean isMergeFailed() {
        return mergeFailed;
    }

    ChunkCopier copier() {
        return copier;
    }

    void markActive() {
        active = true;
    }

    boolean deviceSuspended() {
        return deviceSuspended.getAsBoolean();
    }

    String deviceName() {
        return deviceName;
    }

    /**
     * The handover (spec 8.5), called on the destination: it takes the source's store and
     * complete table (the source gets this one's unused ones), the valid and overflow flags;
     * the store's overflow flag comes from this table; the source becomes invalid. The caller
     * holds the origin's I/O lock exclusively and the source's device is suspended, so no copy
     * is in flight on either side.
     */
    void takeOver(Snapshot source) {
        ExceptionStore myStore = store;
        ExceptionTable myTable = complete;
        store = source.store;
        complete = source.complete;
        source.store = myStore;
        source.complete = myTable;
        store.setOverflowSupported(tableOverflow);
        valid = source.valid;
        overflowed = source.overflowed;
        source.valid = false;
        log.info("{}: took over the exception store of {} ({} exceptions)", deviceName, source.deviceName,
                complete.size());
    }

    /** A destination gives back the store it was built with for one of chunk size 0 (spec 8.2, step 6). */
    void replaceUnusedStore(ExceptionStore unsized) {
        store = unsized;
    }

    /** The source went away before the handover: this destination will be invalid. */
    void cancelHandover() {
        valid = false;
        log.warn("{}: Cancelling snapshot handover.", deviceName);
    }

    /** "Snapshot is marked invalid." at load: the COW says so; nothing is written. */
    void markLoadedInvalid() {
        valid = false;
    }

    /**
     * Invalidates once: status Invalid, later I/O errors, origin writes skip it, the persistent
     * header says valid=0, and the device counts an event.
     */
    void invalidate(String why) {
        synchronized (this) {
            if (!valid) {
                return;
            }
            valid = false;
        }
        log.error("{}: Invalidating snapshot: {}", deviceName, why);
        store.invalidate();
        event.run();
    }

    private void overflow() {
        boolean first;
        synchronized (this) {
            first = !overflowed;
            overflowed = true;
        }
        if (first) {
            log.error("{}: Snapshot overflowed: Unable to allocate exception.", deviceName);
        }
    }

    // ---- copy-out, for origin writes ---------------------------------------------------------------

    /** What an origin write must do for this snapshot before it may overwrite a chunk. */
    sealed interface Need permits Wait, Copy {
    }

    /** Another write already started the exception: wait for it. */
    record Wait(CompletableFuture<Boolean> done) implements Need {
    }

    /** A new exception: the caller copies the origin chunk into {@link #destination()} and commits. */
    record Copy(Snapshot snapshot, Pending pending) implements Need {
        /** Where the copy goes in this snapshot's COW. */
        CopyOp.Destination destination() {
            return new CopyOp.Destination(snapshot.cow.device(), pending.remap.newChunk() * snapshot.store.chunkSize().bytes());
        }

        /** The copy's outcome for this snapshot: commit, then the exception completes. */
        void copied(boolean ok) {
            snapshot.commit(pending, ok);
        }

        CompletableFuture<Boolean> done() {
            return pending.done;
        }
    }

    /**
     * What preserving origin chunk {@code chunk} in this snapshot needs: null when nothing (invalid,
     * not active, already there), a {@link Wait}, or a {@link Copy} the caller must perform. A full
     * COW invalidates the snapshot here, even with PO (spec 7).
     */
    Need need(long chunk) {
        if (merging) {
            return null; // a merging snapshot never gets new exceptions
        }
        Pending p;
        synchronized (this) {
            if (!valid || !active) {
                return null;
            }
            if (complete.lookup(chunk) >= 0) {
                return null;
            }
            p = pending.get(chunk);
            if (p != null) {
                return new Wait(p.done);
            }
            PendingRemap remap;
            try {
                // No commit hold here: an origin write's pieces each hold the origin's I/O lock while
                // they wait for their copies, so a held commit could wait for a piece that waits
                // behind a handover for that lock.
                remap = store.prepare(chunk);
            } catch (IOException full) {
                remap = null;
            }
            if (remap == null) {
                p = null;
            } else {
                p = new Pending(remap);
                pending.put(chunk, p);
            }
        }
        if (p == null) {
            invalidate("Unable to allocate exception.");
            return null;
        }
        return new Copy(this, p);
    }

    /**
     * prepare_exception for a snapshot-device write, with the store's commits held while the
     * rest of its split request is still being mapped (see {@link MapOrder#whileMapping}), so
     * that its pieces share a commit. Called under this object's monitor.
     */
    private PendingRemap prepare(long chunk) throws IOException {
        ExceptionStore s = store;
        MapOrder.whileMapping(s, s::holdCommits, s::releaseCommits);
        return s.prepare(chunk);
    }

    /** Bytes of origin chunk {@code chunk} a copy moves: the last chunk of an origin may be short. */
    long copyLength(long chunk) {
        long chunkBytes = store.chunkSize().bytes();
        return Math.min(chunkBytes, origin.device().sizeBytes() - chunk * chunkBytes);
    }

    private void startCopy(Pending p) {
        long chunkBytes = store.chunkSize().bytes();
        long start = p.remap.oldChunk() * chunkBytes;
        long length = Math.min(chunkBytes, origin.device().sizeBytes() - start);
        copier.copy(new CopyOp(origin.device(), start, length,
                        List.of(new CopyOp.Destination(cow.device(), p.remap.newChunk() * chunkBytes))))
                .whenComplete((result, failure) -> commit(p, failure == null && result.allSucceeded()));
    }

    private void commit(Pending p, boolean copied) {
        ExceptionStore s = store;
        long requested = System.nanoTime();
        s.commit(p.remap, copied, (remap, ok) -> {
            commits.committed(s, System.nanoTime() - requested, ok);
            finish(p, ok);
        });
    }

    /** pending_complete: on success the remap becomes visible, after reads of the chunk drain. */
    private void finish(Pending p, boolean ok) {
        long chunk = p.remap.oldChunk();
        if (!ok || !valid) {
            synchronized (this) {
                pending.remove(chunk);
            }
            invalidate("Error reading/writing.");
            p.done.complete(false);
            return;
        }
        synchronized (this) {
            complete.insert(chunk, p.remap.newChunk());
        }
        // An origin write released now could overwrite data a snapshot read is still fetching.
        while (trackedReadsOf(chunk) > 0) {
            Thread.onSpinWait();
            Thread.yield();
        }
        synchronized (this) {
            pending.remove(chunk);
        }
        p.done.complete(true);
    }

    private synchronized int trackedReadsOf(long chunk) {
        return trackedReads.getOrDefault(chunk, 0);
    }

    // ---- the snapshot device's I/O ---------------------------------------------------------------

    /** Maps I/O on the snapshot device; {@code io} never crosses a chunk. */
    void map(IoRequest io) throws IOException, InterruptedException {
        Device cowDevice = cow.device();
        if (io.op() == IoRequest.Op.FLUSH) {
            cowDevice.flush(); // works even on an invalid snapshot
            return;
        }
        if (!valid) {
            throw new IOException(deviceName + ": snapshot is invalid");
        }
        ChunkSize chunkSize = store.chunkSize();
        long chunk = chunkSize.chunkOf(io.sector());
        long offsetInChunk = (io.sector() & chunkSize.mask()) << 9;
        switch (io.op()) {
            case READ -> read(io, chunk, offsetInChunk, chunkSize);
            case WRITE -> write(io, chunk, offsetInChunk, chunkSize);
            default -> throw new IOException(deviceName + ": " + io.op() + " is not supported here");
        }
    }

    /**
     * A discard with {@code discard_zeroes_cow} (spec 5.2): a whole chunk that has an exception
     * reads zeroes afterwards (its COW chunk is zeroed, the exception stays); part of such a
     * chunk is discarded on the COW; a chunk without an exception is left alone (no copy-out).
     * With {@code discard_passdown_origin} the range is also discarded on the origin device
     * directly, not through the origin target, so no other snapshot copies it.
     */
    void discard(IoRequest io, boolean passdown) throws IOException {
        if (!valid) {
            throw new IOException(deviceName + ": snapshot is invalid");
        }
        ChunkSize chunkSize = store.chunkSize();
        long chunk = chunkSize.chunkOf(io.sector());
        long offsetInChunk = (io.sector() & chunkSize.mask()) << 9;
        if (passdown) {
            synchronized (this) {
                trackedReads.merge(chunk, 1, Integer::sum);
            }
            try {
                origin.device().discard(io.sector() << 9, io.lengthSectors() << 9);
            } finally {
                synchronized (this) {
                    trackedReads.computeIfPresent(chunk, (k, n) -> n == 1 ? null : n - 1);
                }
            }
        }
        long mapped;
        synchronized (this) {
            mapped = complete.lookup(chunk);
        }
        if (mapped < 0) {
            return;
        }
        long at = mapped * chunkSize.bytes() + offsetInChunk;
        if (io.lengthSectors() == chunkSize.sectors()) {
            cow.device().writeZeroes(at, chunkSize.bytes());
        } else {
            cow.device().discard(at, io.lengthSectors() << 9);
        }
    }

    private void read(IoRequest io, long chunk, long offsetInChunk, ChunkSize chunkSize) throws IOException {
        long mapped;
        synchronized (this) {
            mapped = complete.lookup(chunk);
            if (mapped < 0) {
                trackedReads.merge(chunk, 1, Integer::sum);
            }
        }
        MapOrder.mapped();
        if (mapped >= 0) {
            cow.device().read(mapped * chunkSize.bytes() + offsetInChunk, io.buffer());
            return;
        }
        try {
            origin.device().read(io.sector() << 9, io.buffer());
        } finally {
            synchronized (this) {
                trackedReads.computeIfPresent(chunk, (k, n) -> n == 1 ? null : n - 1);
            }
        }
    }

    private void write(IoRequest io, long chunk, long offsetInChunk, ChunkSize chunkSize)
            throws IOException, InterruptedException {
        if (overflowed) {
            throw new IOException(deviceName + ": snapshot overflowed");
        }
        while (true) {
            Pending mine = null;
            CompletableFuture<Boolean> wait;
            long mapped;
            synchronized (this) {
                if (!valid) {
                    throw new IOException(deviceName + ": snapshot is invalid");
                }
                mapped = complete.lookup(chunk);
                Pending other = mapped >= 0 ? null : pending.get(chunk);
                wait = other == null ? null : other.done;
                if (mapped < 0 && other == null) {
                    PendingRemap remap;
                    try {
                        remap = prepare(chunk);
                    } catch (IOException full) {
                        remap = null;
                    }
                    if (remap != null) {
                        mine = new Pending(remap);
                        pending.put(chunk, mine);
                    }
                }
            }
            if (mapped >= 0) {
                MapOrder.mapped();
                cow.device().write(mapped * chunkSize.bytes() + offsetInChunk, io.buffer());
                if (io.fua()) {
                    cow.device().flush();
                }
                return;
            }
            if (wait != null) {
                MapOrder.mapped();
                awaitQuietly(wait);
                continue; // the exception is complete (or the snapshot invalid) now
            }
            if (mine == null) {
                if (store.overflowSupported()) {
                    overflow();
                } else {
                    invalidate("Unable to allocate exception.");
                }
                MapOrder.mapped();
                throw new IOException(deviceName + ": no room in the COW");
            }
            MapOrder.mapped(); // this piece's COW chunk is allocated: the next piece may map
            if (io.lengthSectors() == chunkSize.sectors()) {
                // A whole-chunk write is the copy: no need to read the origin.
                boolean written = true;
                try {
                    cow.device().write(mine.remap.newChunk() * chunkSize.bytes(), io.buffer());
                } catch (IOException e) {
                    written = false;
                }
                commit(mine, written);
                if (!awaitQuietly(mine.done)) {
                    throw new IOException(deviceName + ": writing the exception failed");
                }
                return;
            }
            startCopy(mine);
            if (!awaitQuietly(mine.done)) {
                throw new IOException(deviceName + ": copying the exception failed");
            }
            // Now mapped: the loop writes the request into the COW copy.
        }
    }

    private static boolean awaitQuietly(CompletableFuture<Boolean> f) throws InterruptedException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            return false;
        }
    }

    // ---- the merging device's I/O (snapshot-merge, spec 9.3) ---------------------------------------

    /**
     * Maps a read or write on the merging device; {@code io} never crosses a chunk of any
     * snapshot of the origin. A chunk that still has an exception is read from, or written to,
     * the COW (writes tracked, so that the merge step waits for them); a write to a chunk of the
     * step in progress waits for the step and is then mapped again (the chunk is on the origin
     * by then). Everything else goes to the origin, writes through the copy-out of the other
     * snapshots. An invalid merging snapshot sends everything to the origin.
     */
    void mapMerging(IoRequest io, CopyOut copyOut, long splitSectors) throws IOException, InterruptedException {
        boolean write = io.op() == IoRequest.Op.WRITE;
        while (true) {
            ChunkSize chunkSize = null;
            long chunk = -1;
            long mapped = -1;
            CompletableFuture<Boolean> queued = null;
            synchronized (this) {
                if (valid) { // an invalid one (chunk size maybe 0) sends everything to the origin
                    chunkSize = store.chunkSize();
                    chunk = chunkSize.chunkOf(io.sector());
                    mapped = complete.lookup(chunk);
                    if (mapped >= 0 && write && mergeStep != null && chunk >= firstMergingChunk
                            && chunk < firstMergingChunk + mergingChunks) {
                        queued = mergeStep;
                    } else if (mapped >= 0 && write) {
                        trackedWrites.merge(chunk, 1, Integer::sum);
                    }
                }
            }
            if (queued != null) {
                if (!awaitQuietly(queued)) {
                    throw new IOException(deviceName + ": the merge of chunk " + chunk + " failed");
                }
                continue;
            }
            if (mapped < 0) {
                if (write) {
                    copyOut.write(io, splitSectors);
                } else {
                    origin.device().read(io.sector() << 9, io.buffer());
                }
                return;
            }
            long at = mapped * chunkSize.bytes() + ((io.sector() & chunkSize.mask()) << 9);
            if (!write) {
                cow.device().read(at, io.buffer());
                return;
            }
            try {
                cow.device().write(at, io.buffer());
                if (io.fua()) {
                    cow.device().flush();
                }
            } finally {
                synchronized (this) {
                    if (trackedWrites.merge(chunk, -1, Integer::sum) == 0) {
                        trackedWrites.remove(chunk);
                        notifyAll();
                    }
                }
            }
            return;
        }
    }

    // ---- the merge step's side (spec 9.2 steps 6, 7, 12, 13) ---------------------------------------

    /** Step 6: writes to chunks {@code [first, first + count)} queue from now on. */
    synchronized void beginMergeStep(long first, long count) {
        firstMergingChunk = first;
        mergingChunks = count;
        mergeStep = new CompletableFuture<>();
    }

    /** Step 7: waits until no tracked write to the step's chunks is in flight. */
    synchronized void awaitTrackedWrites() throws InterruptedException {
        while (trackedWrites.keySet().stream().anyMatch(c -> c >= firstMergingChunk && c < firstMergingChunk + mergingChunks)) {
            wait();
        }
    }

    /**
     * Steps 12 and 13: forgets the step's chunks, highest first, and releases the queued
     * writes. A removal error (the kernel's words) fails the step instead.
     */
    void finishMergeStep() throws dmsnap.store.CorruptStoreException {
        CompletableFuture<Boolean> step;
        synchronized (this) {
            for (long c = firstMergingChunk + mergingChunks - 1; c >= firstMergingChunk; c--) {
                complete.removeForMerge(c);
            }
            step = endStepLocked();
        }
        step.complete(true);
    }

    /** Failure handling of a step: merge_failed, the range cleared, queued writes fail. */
    void failMergeStep() {
        CompletableFuture<Boolean> step;
        synchronized (this) {
            mergeFailed = true;
            step = endStepLocked();
        }
        if (step != null) {
            step.complete(false);
        }
    }

    /** merge_failed without a step in progress (reading the store failed). */
    void markMergeFailed() {
        mergeFailed = true;
    }

    private CompletableFuture<Boolean> endStepLocked() {
        CompletableFuture<Boolean> step = mergeStep;
        mergeStep = null;
        firstMergingChunk = 0;
        mergingChunks = 0;
        return step;
    }

    // ---- status ----------------------------------------------------------------------------------

    String infoStatus() throws IOException {
        if (!valid) {
            return "Invalid";
        }
        if (mergeFailed) {
            return "Merge failed";
        }
        if (overflowed) {
            return "Overflow";
        }
        return store.usage().statusString();
    }

    String tableStatus() {
        return origin.canonicalName() + " " + cow.canonicalName() + " " + store.tableArgs();
    }

    /** Releases the table and store (after waiting for pending exceptions) and the devices. */
    void close() throws IOException {
        List<Pending> waiting;
        synchronized (this) {
            waiting = List.copyOf(pending.values());
        }
        for (Pending p : waiting) {
            p.done.join();
        }
        store.close();
        complete.close();
        try {
            cow.close();
        } finally {
            origin.close();
        }
    }
}
