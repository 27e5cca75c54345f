package dmsnap.snapshot;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionTable;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreUsage;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.copy.CopyResult;
import dmsnap.store.device.Device;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;
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

    private final DeviceResolver.Handle origin;
    private final DeviceResolver.Handle cow;
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
    /**
     * The first copy (or whole-chunk write) that failed, for the invalidation line: set before its
     * commit, so whichever commit callback of that round invalidates (the first in allocation
     * order, maybe one whose copy succeeded) can say why.
     */
    private final AtomicReference<String> firstCopyFailure = new AtomicReference<>();
    private final Map<Long, Pending> pending = new HashMap<>();
    private final Map<Long, Integer> trackedReads = new HashMap<>();
    /** A snapshot-merge instance: origin writes never copy into it (spec 5.1). */
    private final boolean merging;
    private volatile Merger merger;
    /** In memory only, never cleared for this instance, not handed over (spec 9.2). */
    private volatile boolean mergeFailed;
    /** Writes on the merging device remapped to the COW, in flight, by chunk (spec 4, 9.3). */
    private final Map<Long, Integer> trackedWrites = new HashMap<>();
    /**
     * The merge steps in progress, oldest first: those copied and waiting for their batch's commit,
     * the one copying and the one taken next (each the kernel's {@code first_merging_chunk},
     * {@code num_merging_chunks}).
     */
    private final java.util.ArrayDeque<MergeStep> mergeSteps = new java.util.ArrayDeque<>();

    /**
     * The chunks {@code [first, first + count)} of one merge step; {@link #done} completes when
     * the step has committed (true) or failed (false): writes queued on its chunks wait on it.
     */
    record MergeStep(long first, long count, CompletableFuture<Boolean> done) {
        boolean holds(long chunk) {
            return chunk >= first && chunk < first + count;
        }
    }

    /** An exception being made: its copy (or full-chunk write) and commit are in progress. */
    static final class Pending {
        final PendingRemap remap;
        final CompletableFuture<Boolean> done = new CompletableFuture<>();

        Pending(PendingRemap remap) {
            this.remap = remap;
        }
    }

    Snapshot(String deviceName, DeviceResolver.Handle origin, DeviceResolver.Handle cow, ExceptionStore store,
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

    DeviceResolver.Identity originIdentity() {
        return origin.identity();
    }

    DeviceResolver.Identity cowIdentity() {
        return cow.identity();
    }

    DeviceResolver.Handle originHandle() {
        return origin;
    }

    DeviceResolver.Handle cowHandle() {
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
     * header says valid=0, and the device counts an event. The one ERROR line has the kernel's
     * phrase for {@code cause}, then {@code reason} (the device and what failed), when known.
     */
    void invalidate(InvalidationCause cause, String reason) {
        synchronized (this) {
            if (!valid) {
                return;
            }
            valid = false;
        }
        if (reason == null) {
            log.error("{}: Invalidating snapshot: {}", deviceName, cause.kernelPhrase());
        } else {
            log.error("{}: Invalidating snapshot: {} {}", deviceName, cause.kernelPhrase(), reason);
        }
        store.invalidate();
        commits.invalidated(deviceName, cause);
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

        /**
         * The copy's outcome for this snapshot, which was its destination {@code index} ({@code
         * failure}: the copy itself broke): commit, then the exception completes.
         */
        void copied(CopyResult result, Throwable failure, int index) {
            snapshot.commit(pending, snapshot.copyFailure(result, failure, index));
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
        String noRoom = null;
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
            try {
                p = new Pending(store.prepare(chunk));
                pending.put(chunk, p);
            } catch (IOException full) {
                p = null;
                noRoom = full.getMessage();
            }
        }
        if (p == null) {
            invalidate(InvalidationCause.NO_SPACE, noRoom);
            return null;
        }
        return new Copy(this, p);
    }

    /** Bytes of origin chunk {@code chunk} a copy moves: the last chunk of an origin may be short. */
    long copyLength(long chunk) {
        long chunkBytes = store.chunkSize().bytes();
        return Math.min(chunkBytes, origin.device().sizeBytes() - chunk * chunkBytes);
    }

    /** Copies the origin chunk of {@code p} into its COW chunk, on this thread when {@code here}. */
    private void startCopy(Pending p, boolean here) {
        long chunkBytes = store.chunkSize().bytes();
        long start = p.remap.oldChunk() * chunkBytes;
        long length = Math.min(chunkBytes, origin.device().sizeBytes() - start);
        CopyOp op = new CopyOp(origin.device(), start, length,
                List.of(new CopyOp.Destination(cow.device(), p.remap.newChunk() * chunkBytes)));
        (here ? copier.copyHere(op) : copier.copy(op))
                .whenComplete((result, failure) -> commit(p, copyFailure(result, failure, 0)));
    }

    /** Why destination {@code index} of a copy did not get its data, naming the device; null when it did. */
    String copyFailure(CopyResult result, Throwable failure, int index) {
        if (failure != null) {
            return "COW " + cow.device().name() + ": the copy failed: " + failure;
        }
        if (result.readError() != null) {
            return "origin " + origin.device().name() + ": " + result.readError().getMessage();
        }
        Exception write = result.writeErrors().get(index);
        return write == null ? null : "COW " + cow.device().name() + ": " + write.getMessage();
    }

    /** Commits {@code p}, whose copy succeeded unless {@code failure} says why not. */
    private void commit(Pending p, String failure) {
        if (failure != null) {
            firstCopyFailure.compareAndSet(null, failure);
        }
        ExceptionStore s = store;
        long requested = System.nanoTime();
        s.commit(p.remap, failure == null, (remap, ok) -> {
            commits.committed(s, System.nanoTime() - requested, ok);
            finish(p, ok, s);
        });
    }

    /** pending_complete: on success the remap becomes visible, after reads of the chunk drain. */
    private void finish(Pending p, boolean ok, ExceptionStore committedBy) {
        long chunk = p.remap.oldChunk();
        if (!ok || !valid) {
            synchronized (this) {
                pending.remove(chunk);
            }
            String storeFailure = committedBy.failure();
            String copy = firstCopyFailure.get();
            invalidate(InvalidationCause.IO_ERROR, copy != null ? copy
                    : storeFailure != null ? "COW " + cow.device().name() + ": " + storeFailure : null);
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

    /**
     * Maps I/O on the snapshot device. A read or write may cover several chunks (the device does
     * not split them): each chunk is decided in order, as dm core maps the per-chunk clones of a
     * bio one after the other, and then neighbouring chunks that are neighbours in the COW (or
     * both on the origin) move in one device I/O, as the block layer merges the clones' requests.
     */
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
        boolean oneChunk = chunkSize.chunkOf(io.endSector() - 1) == chunk;
        switch (io.op()) {
            case READ -> read(io, chunkSize);
            case WRITE -> {
                if (oneChunk) {
                    write(io, chunk, offsetInChunk, chunkSize);
                } else {
                    writeSpan(io, chunkSize);
                }
            }
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

    /** The parts of {@code io} that fall into each chunk, in order. */
    private static List<IoRequest> pieces(IoRequest io, ChunkSize chunkSize) {
        List<IoRequest> pieces = new java.util.ArrayList<>();
        long at = io.sector();
        while (at < io.endSector()) {
            long end = Math.min(io.endSector(), (chunkSize.chunkOf(at) + 1) * chunkSize.sectors());
            pieces.add(io.slice(at, end - at, at));
            at = end;
        }
        return pieces;
    }

    /**
     * Reads: chunks with an exception from the COW, the others from the origin, tracked until the
     * read is done (an origin write releasing a new exception for one of them waits for it).
     */
    private void read(IoRequest io, ChunkSize chunkSize) throws IOException {
        List<IoRequest> pieces = pieces(io, chunkSize);
        long[] mapped = new long[pieces.size()];
        synchronized (this) {
            for (int i = 0; i < mapped.length; i++) {
                long chunk = chunkSize.chunkOf(pieces.get(i).sector());
                mapped[i] = complete.lookup(chunk);
                if (mapped[i] < 0) {
                    trackedReads.merge(chunk, 1, Integer::sum);
                }
            }
        }
        try {
            for (int i = 0; i < mapped.length; ) {
                int j = i + 1;
                while (j < mapped.length && (mapped[i] < 0 ? mapped[j] < 0 : mapped[j] == mapped[j - 1] + 1)) {
                    j++;
                }
                IoRequest first = pieces.get(i);
                MemorySegment into = io.buffer().asSlice((first.sector() - io.sector()) << 9,
                        (pieces.get(j - 1).endSector() - first.sector()) << 9);
                if (mapped[i] >= 0) {
                    cow.device().read(mapped[i] * chunkSize.bytes() + ((first.sector() & chunkSize.mask()) << 9), into);
                } else {
                    origin.device().read(first.sector() << 9, into);
                }
                i = j;
            }
        } finally {
            synchronized (this) {
                for (int i = 0; i < mapped.length; i++) {
                    if (mapped[i] < 0) {
                        trackedReads.computeIfPresent(chunkSize.chunkOf(pieces.get(i).sector()),
                                (k, n) -> n == 1 ? null : n - 1);
                    }
                }
            }
        }
    }

    /** What a snapshot write finds for one chunk, decided under this object's monitor. */
    private sealed interface Decision permits Mapped, Waiting, Allocated, NoRoom {
    }

    /** The chunk has an exception: write into its COW chunk. */
    private record Mapped(long cowChunk) implements Decision {
    }

    /** Another write is making the exception: wait for it. */
    private record Waiting(CompletableFuture<Boolean> done) implements Decision {
    }

    /** This write makes the exception (its COW chunk is allocated). */
    private record Allocated(Pending pending) implements Decision {
    }

    /** The COW is full ({@code reason}: the store's words). */
    private record NoRoom(String reason) implements Decision {
    }

    /** Decides one chunk of a snapshot write; allocates its exception when it has none. */
    private Decision decideWrite(long chunk) throws IOException {
        synchronized (this) {
            if (!valid) {
                throw new IOException(deviceName + ": snapshot is invalid");
            }
            long mapped = complete.lookup(chunk);
            if (mapped >= 0) {
                return new Mapped(mapped);
            }
            Pending other = pending.get(chunk);
            if (other != null) {
                return new Waiting(other.done);
            }
            PendingRemap remap;
            try {
                remap = store.prepare(chunk);
            } catch (IOException full) {
                return new NoRoom(full.getMessage());
            }
            Pending mine = new Pending(remap);
            pending.put(chunk, mine);
            return new Allocated(mine);
        }
    }

    /** A full COW on a snapshot write: PO overflows, P and N invalidate (spec 7); the write errors. */
    private IOException noRoom(NoRoom full) {
        if (store.overflowSupported()) {
            overflow();
        } else {
            invalidate(InvalidationCause.NO_SPACE, full.reason());
        }
        return new IOException(deviceName + ": no room in the COW");
    }

    /** A write inside one chunk. */
    private void write(IoRequest io, long chunk, long offsetInChunk, ChunkSize chunkSize)
            throws IOException, InterruptedException {
        if (overflowed) {
            throw new IOException(deviceName + ": snapshot overflowed");
        }
        while (true) {
            switch (decideWrite(chunk)) {
                case Mapped m -> {
                    cow.device().write(m.cowChunk() * chunkSize.bytes() + offsetInChunk, io.buffer());
                    if (io.fua()) {
                        cow.device().flush();
                    }
                    return;
                }
                case Waiting w -> awaitQuietly(w.done()); // complete (or the snapshot invalid) now
                case NoRoom n -> throw noRoom(n);
                case Allocated a -> {
                    if (io.lengthSectors() == chunkSize.sectors()) {
                        // A whole-chunk write is the copy: no need to read the origin.
                        writeExceptions(List.of(a.pending()), io.buffer(), chunkSize);
                        if (!awaitQuietly(a.pending().done)) {
                            throw new IOException(deviceName + ": writing the exception failed");
                        }
                        return;
                    }
                    startCopy(a.pending(), true); // this thread would only wait for it
                    if (!awaitQuietly(a.pending().done)) {
                        throw new IOException(deviceName + ": copying the exception failed");
                    }
                    // Now mapped: the loop writes the request into the COW copy.
                }
            }
        }
    }

    /**
     * Whole-chunk writes that make new exceptions with consecutive COW chunks: one device write of
     * {@code data} for all of them, then each is committed (the write is its copy).
     */
    private void writeExceptions(List<Pending> run, MemorySegment data, ChunkSize chunkSize) {
        String failure = null;
        try {
            cow.device().write(run.getFirst().remap.newChunk() * chunkSize.bytes(), data);
        } catch (IOException e) {
            failure = "COW " + cow.device().name() + ": " + e.getMessage();
        }
        for (Pending p : run) {
            commit(p, failure);
        }
    }

    /**
     * A write over several chunks: every chunk is decided in order first (so exceptions are
     * allocated in sector order and share their commits), then neighbouring whole-chunk new
     * exceptions and neighbouring mapped chunks are written in one device write each, partial
     * chunks copy first, and the write completes when every exception it made is committed.
     */
    private void writeSpan(IoRequest io, ChunkSize chunkSize) throws IOException, InterruptedException {
        if (overflowed) {
            throw new IOException(deviceName + ": snapshot overflowed");
        }
        List<IoRequest> pieces = pieces(io, chunkSize);
        List<Decision> decisions = new java.util.ArrayList<>(pieces.size());
        IOException failure = null;
        NoRoom full = null;
        // One monitor hold for the whole span: concurrent writes cannot interleave their
        // allocations, so a span's new exceptions get consecutive COW chunks (one device write).
        synchronized (this) {
            for (IoRequest piece : pieces) {
                Decision d = decideWrite(chunkSize.chunkOf(piece.sector()));
                if (d instanceof NoRoom n) {
                    full = n;
                    break;
                }
                decisions.add(d);
            }
        }
        if (full != null) {
            failure = noRoom(full); // the rest of the write fails with it, as the kernel's later clones do
        }
        List<Integer> later = new java.util.ArrayList<>(); // pieces that go through write() once ready
        for (int i = 0; i < decisions.size(); ) {
            IoRequest piece = pieces.get(i);
            boolean whole = piece.lengthSectors() == chunkSize.sectors();
            int j = i + 1;
            switch (decisions.get(i)) {
                case Allocated a when whole -> {
                    List<Pending> run = new java.util.ArrayList<>(List.of(a.pending()));
                    while (j < decisions.size() && pieces.get(j).lengthSectors() == chunkSize.sectors()
                            && decisions.get(j) instanceof Allocated next
                            && next.pending().remap.newChunk() == run.getLast().remap.newChunk() + 1) {
                        run.add(next.pending());
                        j++;
                    }
                    writeExceptions(run, span(io, pieces, i, j), chunkSize);
                }
                case Allocated a -> {
                    startCopy(a.pending(), false);
                    later.add(i);
                }
                case Mapped m -> {
                    while (j < decisions.size() && decisions.get(j) instanceof Mapped next
                            && next.cowChunk() == ((Mapped) decisions.get(j - 1)).cowChunk() + 1) {
                        j++;
                    }
                    try {
                        cow.device().write(m.cowChunk() * chunkSize.bytes() + ((piece.sector() & chunkSize.mask()) << 9),
                                span(io, pieces, i, j));
                    } catch (IOException e) {
                        failure = failure == null ? e : failure;
                    }
                }
                case Waiting w -> later.add(i);
                case NoRoom n -> throw new IllegalStateException("no room was handled while deciding");
            }
            i = j;
        }
        for (int i = 0; i < decisions.size(); i++) {
            Decision d = decisions.get(i);
            boolean ok = switch (d) {
                case Allocated a -> awaitQuietly(a.pending().done);
                case Waiting w -> {
                    awaitQuietly(w.done());
                    yield true;
                }
                default -> true;
            };
            if (!ok && failure == null) {
                failure = new IOException(deviceName + ": making the exception failed");
            }
        }
        for (int i : later) {
            if (failure != null) {
                break;
            }
            IoRequest piece = pieces.get(i).withoutFua();
            try {
                write(piece, chunkSize.chunkOf(piece.sector()), (piece.sector() & chunkSize.mask()) << 9, chunkSize);
            } catch (IOException e) {
                failure = e;
            }
        }
        if (failure != null) {
            throw failure;
        }
        if (io.fua()) {
            cow.device().flush();
        }
    }

    /** The buffer of pieces {@code [from, to)} of {@code io}. */
    private static MemorySegment span(IoRequest io, List<IoRequest> pieces, int from, int to) {
        return io.buffer().asSlice((pieces.get(from).sector() - io.sector()) << 9,
                (pieces.get(to - 1).endSector() - pieces.get(from).sector()) << 9);
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
                    if (mapped >= 0 && write) {
                        for (MergeStep step : mergeSteps) {
                            if (step.holds(chunk)) {
                                queued = step.done();
                            }
                        }
                    }
                    if (queued == null && mapped >= 0 && write) {
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
    synchronized MergeStep beginMergeStep(long first, long count) {
        MergeStep step = new MergeStep(first, count, new CompletableFuture<>());
        mergeSteps.addLast(step);
        return step;
    }

    /** Step 7: waits until no tracked write to the step's chunks is in flight. */
    synchronized void awaitTrackedWrites(MergeStep step) throws InterruptedException {
        while (trackedWrites.keySet().stream().anyMatch(step::holds)) {
            wait();
        }
    }

    /**
     * Steps 12 and 13: forgets the step's chunks, highest first, and releases the queued
     * writes. A removal error (the kernel's words) fails the step instead.
     */
    void finishMergeStep(MergeStep step) throws dmsnap.store.CorruptStoreException {
        synchronized (this) {
            complete.removeRangeForMerge(step.first(), step.count()); // highest first, as the kernel
            mergeSteps.remove(step);
        }
        step.done().complete(true);
    }

    /** Failure handling of a step: merge_failed, the ranges cleared, queued writes fail. */
    void failMergeStep() {
        List<MergeStep> failed;
        synchronized (this) {
            mergeFailed = true;
            failed = List.copyOf(mergeSteps);
            mergeSteps.clear();
        }
        for (MergeStep step : failed) {
            step.done().complete(false);
        }
    }

    /** merge_failed without a step in progress (reading the store failed). */
    void markMergeFailed() {
        mergeFailed = true;
    }

    // ---- status ----------------------------------------------------------------------------------

    /** Spec 6.1: Invalid, then Merge failed, then Overflow, else the store's usage. */
    SnapshotStatus status() throws IOException {
        if (!valid) {
            return new SnapshotStatus.Invalid();
        }
        if (mergeFailed) {
            return new SnapshotStatus.MergeFailed();
        }
        if (overflowed) {
            return new SnapshotStatus.Overflow();
        }
        StoreUsage usage = store.usage();
        return new SnapshotStatus.Usage(usage.allocatedSectors(), usage.totalSectors(), usage.metadataSectors());
    }

    /** Spec 6.2 without the features: origin, COW, store type and effective chunk size. */
    List<String> tableArgs() {
        return List.of(origin.canonicalName(), cow.canonicalName(), store.typeArgument(),
                Long.toString(store.chunkSize().sectors()));
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
