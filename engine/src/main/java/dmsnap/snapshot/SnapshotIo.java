package dmsnap.snapshot;

import dmsnap.snapshot.PendingExceptions.Allocated;
import dmsnap.snapshot.PendingExceptions.CowError;
import dmsnap.snapshot.PendingExceptions.Decision;
import dmsnap.snapshot.PendingExceptions.Mapped;
import dmsnap.snapshot.PendingExceptions.NoRoom;
import dmsnap.snapshot.PendingExceptions.Pending;
import dmsnap.snapshot.PendingExceptions.Waiting;
import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionTable;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.copy.CopyResult;
import dmsnap.store.device.Device;
import dmsnap.store.device.Extent;
import dmsnap.target.Allocation;
import dmsnap.target.AllocationSink;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * A snapshot's I/O (dm-snap.c's {@code snapshot_map}, {@code __origin_write}'s per-snapshot
 * part): the copy-out an origin write needs from this snapshot, and reads, writes and discards
 * of the snapshot device, mapped to the COW or the origin chunk by chunk.
 *
 * <p>Cache modes ({@link DeferredCommits}): in {@code directsync} a write that makes an
 * exception completes once the exception is durable, as the kernel's; in {@code none} and
 * {@code writeback} once its data is written (the exception is visible and committed later), and
 * a FLUSH or a FUA write commits what is deferred. {@code writeback} reads and writes the COW's
 * data through the page cache ({@link #cowData}), and reads the origin through it ({@link
 * #originData}), as qemu-nbd's writeback reads its backing file: a chunk of a cached origin is
 * then a copy, not a device read. Origin writes stay O_DIRECT (the origin target's, and a
 * merge's), and Linux drops the cached pages of a range an O_DIRECT write wrote, so the cache
 * never holds an overwritten origin chunk.
 *
 * <p>Locks: decisions are made under the snapshot's lock ({@link SnapshotState}'s monitor); the
 * I/O and the waits for pending exceptions happen outside it.
 */
final class SnapshotIo {
    private final SnapshotState state;
    private final PendingExceptions pending;
    private final DeviceResolver.Handle origin;
    /** The origin for reads: the origin device, or its page-cache view in {@code writeback}. */
    private final Device originData;
    /** The COW for data: the COW device, or its page-cache view in {@code writeback}. */
    private final Device cowData;
    /** And where runs of new chunks go (around the page cache when they are long). */
    private final PageCacheBypass cowPath;

    private final DeferredCommits deferred;
    private final ChunkCopier copier;
    /** A snapshot-merge instance: origin writes never copy into it (spec 5.1). */
    private final boolean merging;

    SnapshotIo(
            SnapshotState state,
            PendingExceptions pending,
            DeviceResolver.Handle origin,
            Device originData,
            PageCacheBypass cowPath,
            DeferredCommits deferred,
            ChunkCopier copier,
            boolean merging) {
        this.state = state;
        this.pending = pending;
        this.origin = origin;
        this.originData = originData;
        this.cowData = cowPath.view();
        this.cowPath = cowPath;
        this.deferred = deferred;
        this.copier = copier;
        this.merging = merging;
    }

    // ---- copy-out, for origin writes ---------------------------------------------------------------

    /** What an origin write must do for this snapshot before it may overwrite a chunk. */
    sealed interface Need permits Wait, Copy {}

    /** Another write already started the exception: wait for it. */
    record Wait(CompletableFuture<Boolean> done) implements Need {}

    /** A new exception: the caller copies the origin chunk into {@link #destination()} and commits. */
    record Copy(SnapshotIo io, Pending pending) implements Need {
        /** Where the copy goes in this snapshot's COW. */
        CopyOp.Destination destination() {
            return new CopyOp.Destination(
                    io.cowData,
                    pending.remap.newChunk() * io.state.store().chunkSize().bytes());
        }

        /** Bytes of origin chunk {@code chunk} the copy moves. */
        long copyLength(long chunk) {
            return io.copyLength(chunk);
        }

        /**
         * The copy's outcome for this snapshot, which was its destination {@code index} ({@code
         * failure}: the copy itself broke): commit, then the exception completes.
         */
        void copied(CopyResult result, Throwable failure, int index) {
            io.pending.commitCopyOut(pending, io.pending.copyFailure(result, failure, index));
        }

        CompletableFuture<Boolean> done() {
            return pending.done;
        }
    }

    /**
     * What preserving origin chunk {@code chunk} in this snapshot needs: null when nothing (invalid,
     * not active, already there), a {@link Wait}, or a {@link Copy} the caller must perform. A full
     * COW invalidates the snapshot here, even with PO (spec 7); so does an I/O error of the COW
     * while allocating, as an I/O error.
     */
    Need need(long chunk) {
        if (merging) {
            return null; // a merging snapshot never gets new exceptions
        }
        Decision d;
        synchronized (state) {
            if (!state.isValid() || !state.isActive()) {
                return null;
            }
            d = pending.decideForOrigin(chunk);
        }
        return switch (d) {
            case Mapped m -> null;
            case Waiting w -> {
                if (deferred.defers()) {
                    deferred.hurry(w.sequence()); // it may be deferred: the origin write needs it durable
                }
                yield new Wait(w.done());
            }
            case Allocated a -> new Copy(this, a.pending());
            case NoRoom n -> {
                state.invalidate(InvalidationCause.NO_SPACE, n.reason());
                yield null;
            }
            case CowError c -> {
                state.invalidate(InvalidationCause.IO_ERROR, c.reason());
                yield null;
            }
        };
    }

    /** Bytes of origin chunk {@code chunk} a copy moves: the last chunk of an origin may be short. */
    long copyLength(long chunk) {
        long chunkBytes = state.store().chunkSize().bytes();
        return Math.min(chunkBytes, origin.device().sizeBytes() - chunk * chunkBytes);
    }

    /** Copies the origin chunk of {@code p} into its COW chunk, on this thread when {@code here}. */
    private void startCopy(Pending p, boolean here) {
        long chunkBytes = state.store().chunkSize().bytes();
        long start = p.remap.oldChunk() * chunkBytes;
        long length = Math.min(chunkBytes, origin.device().sizeBytes() - start);
        CopyOp op = new CopyOp(
                originData, start, length, List.of(new CopyOp.Destination(cowData, p.remap.newChunk() * chunkBytes)));
        (here ? copier.copyHere(op) : copier.copy(op))
                .whenComplete((result, failure) -> pending.commit(p, pending.copyFailure(result, failure, 0)));
    }

    // ---- the snapshot device's I/O ---------------------------------------------------------------

    /**
     * Maps I/O on the snapshot device. A read or write may cover several chunks (the device does
     * not split them): each chunk is decided in order, as dm core maps the per-chunk clones of a
     * bio one after the other, and then neighbouring chunks that are neighbours in the COW (or
     * both on the origin) move in one device I/O, as the block layer merges the clones' requests.
     */
    void map(IoRequest io) throws IOException, InterruptedException {
        if (io.op() == IoRequest.Op.FLUSH) {
            if (deferred.defers() && state.isValid()) {
                deferred.flush(); // the deferred exceptions too: NBD's FLUSH promises every write before it
            } else {
                cowData.flush(); // works even on an invalid snapshot
            }
            return;
        }
        if (!state.isValid()) {
            throw new IOException(state.deviceName() + ": snapshot is invalid");
        }
        ChunkSize chunkSize = state.store().chunkSize();
        long chunk = chunkSize.chunkOf(io.sector());
        long offsetInChunk = (io.sector() & chunkSize.mask()) << 9;
        boolean oneChunk = chunkSize.chunkOf(io.endSector() - 1) == chunk;
        switch (io.op()) {
            case READ -> read(io, chunkSize, false);
            case WRITE -> {
                if (oneChunk) {
                    write(io, chunk, offsetInChunk, chunkSize);
                } else {
                    writeSpan(io, chunkSize);
                }
            }
            default -> throw new IOException(state.deviceName() + ": " + io.op() + " is not supported here");
        }
    }

    /**
     * A read of the snapshot device that must not wait (the kernel's {@code REQ_NOWAIT}): {@link
     * #map}'s read, each run of chunks from the page cache only. False (the caller maps it the
     * normal way) when the snapshot is invalid (that read fails), a snapshot-merge instance's, a
     * chunk's exception is being made and not yet visible (its copy is in flight), or a run is not
     * cached. A chunk written under an exception not yet committed reads the new data from the
     * COW, as {@link #map}'s read does.
     */
    boolean readIfCached(IoRequest io) throws IOException {
        if (merging || !state.isValid()) {
            return false;
        }
        return read(io, state.store().chunkSize(), true);
    }

    /**
     * A discard with {@code discard_zeroes_cow} (spec 5.2): a whole chunk that has an exception
     * reads zeroes afterwards (its COW chunk is zeroed, the exception stays); part of such a
     * chunk is discarded on the COW; a chunk without an exception is left alone (no copy-out).
     * With {@code discard_passdown_origin} the range is also discarded on the origin device
     * directly, not through the origin target, so no other snapshot copies it.
     */
    void discard(IoRequest io, boolean passdown) throws IOException {
        if (!state.isValid()) {
            throw new IOException(state.deviceName() + ": snapshot is invalid");
        }
        ChunkSize chunkSize = state.store().chunkSize();
        long chunk = chunkSize.chunkOf(io.sector());
        long offsetInChunk = (io.sector() & chunkSize.mask()) << 9;
        if (passdown) {
            synchronized (state) {
                pending.trackRead(chunk);
            }
            try {
                origin.device().discard(io.sector() << 9, io.lengthSectors() << 9);
            } finally {
                pending.untrackRead(chunk);
            }
        }
        long mapped;
        synchronized (state) {
            mapped = state.complete().lookup(chunk);
        }
        if (mapped < 0) {
            return;
        }
        long at = mapped * chunkSize.bytes() + offsetInChunk;
        if (io.lengthSectors() == chunkSize.sectors()) {
            cowData.writeZeroes(at, chunkSize.bytes());
        } else {
            cowData.discard(at, io.lengthSectors() << 9);
        }
    }

    /**
     * Block status of the snapshot's view (and of the origin's while it merges this snapshot): a
     * chunk with an exception is data, held by this device (depth 1); any other chunk is what
     * the origin has there, one layer down. From the complete table, without the snapshot's lock:
     * a chunk whose copy is in flight still reads from the origin, and says so.
     */
    Allocation allocation(long sector, long maxSectors) throws IOException {
        if (!state.isValid()) {
            throw new IOException(state.deviceName() + ": snapshot is invalid");
        }
        ChunkSize chunkSize = state.store().chunkSize();
        ExceptionTable.Cursor exceptions = state.complete().cursor();
        long end = sector + maxSectors;
        long chunk = chunkSize.chunkOf(sector);
        long lastChunk = chunkSize.chunkOf(end - 1);
        if (exceptions.has(chunk)) {
            return Allocation.data(Math.min(end, exceptions.end(chunk, lastChunk + 1) * chunkSize.sectors()) - sector);
        }
        long until = Math.min(end, exceptions.next(chunk + 1, lastChunk + 1) * chunkSize.sectors());
        Allocation below = Allocation.of(origin.device().extentAt(sector << 9, (until - sector) << 9));
        return merging ? below : below.below();
    }

    /**
     * The runs {@link #allocation} gives from {@code sector} on, in one walk: one cursor over the
     * exceptions, and each extent of the origin read once (an origin hole under many gaps between
     * exceptions is one question to the origin's device, not one per gap).
     */
    void allocationRuns(long sector, long maxSectors, AllocationSink sink) throws IOException {
        if (!state.isValid()) {
            throw new IOException(state.deviceName() + ": snapshot is invalid");
        }
        int shift = Long.numberOfTrailingZeros(state.store().chunkSize().sectors());
        ExceptionTable.Cursor exceptions = state.complete().cursor();
        long end = sector + maxSectors;
        long chunkLimit = ((end - 1) >>> shift) + 1;
        long originFrom = 0; // the origin's extent read last: [originFrom, originTo), at originDepth
        long originTo = 0;
        int originDepth = 0;
        for (long at = sector; at < end; ) {
            long chunk = at >>> shift;
            long own = Math.min(end, exceptions.end(chunk, chunkLimit) << shift);
            long sectors;
            int depth;
            if (own > at) {
                sectors = own - at;
                depth = 1;
            } else {
                if (at < originFrom || at >= originTo) {
                    Extent extent = origin.device().extentAt(at << 9, (end - at) << 9);
                    originFrom = at;
                    originTo = at + Math.max(1, extent.lengthBytes() >>> 9);
                    originDepth = extent.hole() ? 0 : merging ? 1 : 2;
                }
                long until = Math.min(end, exceptions.next(chunk + 1, chunkLimit) << shift);
                sectors = Math.min(until, originTo) - at;
                depth = originDepth;
            }
            if (!sink.accept(sectors, depth)) {
                return;
            }
            at += sectors;
        }
    }

    /** The parts of {@code io} that fall into each chunk, in order. */
    private static List<IoRequest> pieces(IoRequest io, ChunkSize chunkSize) {
        List<IoRequest> pieces =
                new ArrayList<>((int) (chunkSize.chunkOf(io.endSector() - 1) - chunkSize.chunkOf(io.sector()) + 1));
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
     * {@code nowait} ({@link #readIfCached}): false, before anything is tracked, when a chunk's
     * exception is being made and not yet visible, and false when a run is not in the page cache.
     */
    private boolean read(IoRequest io, ChunkSize chunkSize, boolean nowait) throws IOException {
        List<IoRequest> pieces = pieces(io, chunkSize);
        long[] mapped = new long[pieces.size()];
        synchronized (state) {
            for (int i = 0; i < mapped.length; i++) {
                long chunk = chunkSize.chunkOf(pieces.get(i).sector());
                mapped[i] = state.complete().lookup(chunk);
                if (nowait && mapped[i] < 0 && pending.isPending(chunk)) {
                    return false;
                }
            }
            for (int i = 0; i < mapped.length; i++) {
                if (mapped[i] < 0) {
                    pending.trackRead(chunkSize.chunkOf(pieces.get(i).sector()));
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
                MemorySegment into = io.buffer()
                        .asSlice(
                                (first.sector() - io.sector()) << 9,
                                (pieces.get(j - 1).endSector() - first.sector()) << 9);
                boolean done = mapped[i] >= 0
                        ? cowData.read(
                                mapped[i] * chunkSize.bytes() + ((first.sector() & chunkSize.mask()) << 9),
                                into,
                                nowait)
                        : originData.read(first.sector() << 9, into, nowait);
                if (!done) {
                    return false;
                }
                i = j;
            }
            return true;
        } finally {
            for (int i = 0; i < mapped.length; i++) {
                if (mapped[i] < 0) {
                    pending.untrackRead(chunkSize.chunkOf(pieces.get(i).sector()));
                }
            }
        }
    }

    /** Decides one chunk of a snapshot write; allocates its exception when it has none. */
    private Decision decideWrite(long chunk) throws IOException {
        synchronized (state) {
            if (!state.isValid()) {
                throw new IOException(state.deviceName() + ": snapshot is invalid");
            }
            return pending.decide(chunk);
        }
    }

    /** A full COW on a snapshot write: PO overflows, P and N invalidate (spec 7); the write errors. */
    private IOException noRoom(NoRoom full) {
        if (state.store().overflowSupported()) {
            state.overflow();
        } else {
            state.invalidate(InvalidationCause.NO_SPACE, full.reason());
        }
        return new IOException(state.deviceName() + ": no room in the COW");
    }

    /**
     * The COW failed while allocating a snapshot write's exception: the snapshot is invalidated as
     * for a failed copy (with PO too: it is not an overflow), and the write errors.
     */
    private IOException cowError(CowError failed) {
        state.invalidate(InvalidationCause.IO_ERROR, failed.reason());
        return new IOException(state.deviceName() + ": allocating the exception failed: " + failed.reason());
    }

    /**
     * The end of a write with FUA: its data durable, and when commits are deferred every
     * exception made so far committed (the write's own among them).
     */
    private void fuaFlush() throws IOException, InterruptedException {
        if (deferred.defers()) {
            deferred.flush();
        } else {
            cowData.flush();
        }
    }

    /** A write inside one chunk. */
    private void write(IoRequest io, long chunk, long offsetInChunk, ChunkSize chunkSize)
            throws IOException, InterruptedException {
        if (state.isOverflowed()) {
            throw new IOException(state.deviceName() + ": snapshot overflowed");
        }
        while (true) {
            switch (decideWrite(chunk)) {
                case Mapped m -> {
                    cowData.write(m.cowChunk() * chunkSize.bytes() + offsetInChunk, io.buffer());
                    if (io.fua()) {
                        fuaFlush();
                    }
                    return;
                }
                case Waiting w -> awaitQuietly(w.done()); // complete (or the snapshot invalid) now
                case NoRoom n -> throw noRoom(n);
                case CowError c -> throw cowError(c);
                case Allocated a -> {
                    if (io.lengthSectors() == chunkSize.sectors()) {
                        // A whole-chunk write is the copy: no need to read the origin.
                        writeExceptions(List.of(a.pending()), io.buffer(), chunkSize);
                        if (!awaitQuietly(a.pending().done)) {
                            throw new IOException(state.deviceName() + ": writing the exception failed");
                        }
                        if (io.fua() && deferred.defers()) {
                            fuaFlush(); // directsync: the commit made it durable already
                        }
                        return;
                    }
                    startCopy(a.pending(), true); // this thread would only wait for it
                    if (!awaitQuietly(a.pending().done)) {
                        throw new IOException(state.deviceName() + ": copying the exception failed");
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
        long at = run.getFirst().remap.newChunk() * chunkSize.bytes();
        Device to = cowPath.forNewChunks(at, data);
        try {
            to.write(at, data);
        } catch (IOException e) {
            failure = "COW " + to.name() + ": " + e.getMessage();
        }
        pending.commit(run, failure);
    }

    /**
     * A write over several chunks: every chunk is decided in order first (so exceptions are
     * allocated in sector order and share their commits), then neighbouring whole-chunk new
     * exceptions and neighbouring mapped chunks are written in one device write each, partial
     * chunks copy first, and the write completes when every exception it made is committed.
     */
    private void writeSpan(IoRequest io, ChunkSize chunkSize) throws IOException, InterruptedException {
        if (state.isOverflowed()) {
            throw new IOException(state.deviceName() + ": snapshot overflowed");
        }
        List<IoRequest> pieces = pieces(io, chunkSize);
        List<Decision> decisions = new ArrayList<>(pieces.size());
        IOException failure = null;
        Decision refused = null; // a NoRoom or a CowError
        // One hold of the snapshot's lock for the whole span: concurrent writes cannot interleave
        // their allocations, so a span's new exceptions get consecutive COW chunks (one device write).
        synchronized (state) {
            if (!state.isValid()) {
                throw new IOException(state.deviceName() + ": snapshot is invalid");
            }
            pending.decide(chunkSize.chunkOf(io.sector()), pieces.size(), decisions);
            if (decisions.getLast() instanceof NoRoom || decisions.getLast() instanceof CowError) {
                refused = decisions.removeLast();
            }
        }
        if (refused != null) {
            // The rest of the write fails with it, as the kernel's later clones do.
            failure = refused instanceof NoRoom n ? noRoom(n) : cowError((CowError) refused);
        }
        List<Integer> later = new ArrayList<>(); // pieces that go through write() once ready
        for (int i = 0; i < decisions.size(); ) {
            IoRequest piece = pieces.get(i);
            boolean whole = piece.lengthSectors() == chunkSize.sectors();
            int j = i + 1;
            switch (decisions.get(i)) {
                case Allocated a
                when whole -> {
                    List<Pending> run = new ArrayList<>(List.of(a.pending()));
                    while (j < decisions.size()
                            && pieces.get(j).lengthSectors() == chunkSize.sectors()
                            && decisions.get(j) instanceof Allocated next
                            && next.pending().remap.newChunk()
                                    == run.getLast().remap.newChunk() + 1) {
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
                    while (j < decisions.size()
                            && decisions.get(j) instanceof Mapped next
                            && next.cowChunk() == ((Mapped) decisions.get(j - 1)).cowChunk() + 1) {
                        j++;
                    }
                    try {
                        cowData.write(
                                m.cowChunk() * chunkSize.bytes() + ((piece.sector() & chunkSize.mask()) << 9),
                                span(io, pieces, i, j));
                    } catch (IOException e) {
                        failure = failure == null ? e : failure;
                    }
                }
                case Waiting w -> later.add(i);
                case NoRoom n -> throw new IllegalStateException("no room was handled while deciding");
                case CowError c -> throw new IllegalStateException("a COW error was handled while deciding");
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
                failure = new IOException(state.deviceName() + ": making the exception failed");
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
            fuaFlush();
        }
    }

    /** The buffer of pieces {@code [from, to)} of {@code io}. */
    private static MemorySegment span(IoRequest io, List<IoRequest> pieces, int from, int to) {
        return io.buffer()
                .asSlice(
                        (pieces.get(from).sector() - io.sector()) << 9,
                        (pieces.get(to - 1).endSector() - pieces.get(from).sector()) << 9);
    }

    /** The outcome of an exception or merge step: false when it failed. */
    static boolean awaitQuietly(CompletableFuture<Boolean> f) throws InterruptedException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            return false;
        }
    }
}
