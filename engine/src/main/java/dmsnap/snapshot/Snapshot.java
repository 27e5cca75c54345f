package dmsnap.snapshot;

import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionTable;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.Device;
import dmsnap.target.Allocation;
import dmsnap.target.AllocationSink;
import dmsnap.target.CacheMode;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import java.io.IOException;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * One snapshot instance ({@code struct dm_snapshot}), the facade the targets, the registry, the
 * copy-out and the merger use. Its parts follow dm-snap.c's seams:
 * <ul>
 *   <li>{@link SnapshotState}: the store and complete table, the valid / overflowed / active /
 *       merge-failed flags, invalidation and the handover;</li>
 *   <li>{@link PendingExceptions}: the tracked chunks, exceptions being made and the snapshot
 *       reads their completion waits for;</li>
 *   <li>{@link SnapshotIo}: the copy-out an origin write needs, and the snapshot device's I/O;</li>
 *   <li>{@link DeferredCommits}: in the cache modes {@code none} and {@code writeback}, when the
 *       exceptions made by snapshot writes, visible before they are durable, are committed;</li>
 *   <li>{@link MergeSteps}: for a snapshot-merge instance, the merging device's I/O (spec 9.3) and
 *       the merge step's view of it (spec 9.2).</li>
 * </ul>
 *
 * <p>Locks: the snapshot's lock is its {@link SnapshotState}'s monitor (see there); tracked reads
 * and writes ({@link InFlightChunks}) have their own monitors, taken inside it, and are where
 * waits for in-flight I/O park. No I/O and no wait happens while holding the snapshot's lock.
 */
public final class Snapshot {
    private final DeviceResolver.Handle origin;
    private final DeviceResolver.Handle cow;
    private final ChunkCopier copier;
    private final long lengthSectors;
    private final BooleanSupplier deviceSuspended;
    /** A snapshot-merge instance: origin writes never copy into it (spec 5.1). */
    private final boolean merging;

    private volatile Merger merger;
    private final SnapshotState state;
    private final PendingExceptions pending;
    private final SnapshotIo io;
    private final MergeSteps mergeSteps;
    private final DeferredCommits deferred;
    /** Where the snapshot's data goes in the COW: the COW device, or its page-cache view in {@code writeback}. */
    private final Device cowData;
    /** Where the snapshot reads the origin: the origin device, or its page-cache view in {@code writeback}. */
    private final Device originData;

    /**
     * @param cacheMode when snapshot writes are acknowledged ({@code writeback}: the COW's data
     *                  and the origin's reads through {@link Device#buffered()}, which may open
     *                  them a second time)
     * @param timer     runs the commit interval of deferred commits
     * @throws IOException the COW's or the origin's page-cache view could not be opened
     */
    Snapshot(
            String deviceName,
            DeviceResolver.Handle origin,
            DeviceResolver.Handle cow,
            ExceptionStore store,
            ChunkCopier copier,
            long lengthSectors,
            Runnable event,
            BooleanSupplier deviceSuspended,
            CommitObserver commits,
            boolean merging,
            CacheMode cacheMode,
            CommitTimer timer)
            throws IOException {
        this.merging = merging;
        this.deviceSuspended = deviceSuspended;
        this.origin = origin;
        this.cow = cow;
        this.copier = copier;
        this.lengthSectors = lengthSectors;
        PageCacheBypass cowPath = PageCacheBypass.of(cacheMode, cow.device());
        this.cowData = cowPath.view();
        this.originData = cacheMode.dataView(origin.device());
        this.state = new SnapshotState(deviceName, store, event, commits);
        this.deferred = new DeferredCommits(state, cacheMode, timer);
        this.pending = new PendingExceptions(state, origin, cow, deferred);
        this.io = new SnapshotIo(state, pending, origin, originData, cowPath, deferred, copier, merging);
        this.mergeSteps = new MergeSteps(state, origin, cow);
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
        return state.store();
    }

    ExceptionTable completeTable() {
        return state.complete();
    }

    /** The complete table for a change-map walk, held until released; null once this instance is destroyed. */
    HeldTable holdCompleteTable() {
        return state.holdComplete();
    }

    long lengthSectors() {
        return lengthSectors;
    }

    long chunkSectors() {
        return state.store().chunkSize().sectors();
    }

    /** For the registry's order. */
    long sortChunkSectors() {
        return chunkSectors();
    }

    boolean isValid() {
        return state.isValid();
    }

    boolean isActive() {
        return state.isActive();
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
        return state.isMergeFailed();
    }

    ChunkCopier copier() {
        return copier;
    }

    /** When this instance's snapshot writes are acknowledged. */
    CacheMode cacheMode() {
        return deferred.mode();
    }

    /** The device the snapshot's data is read from and written to in the COW. */
    Device cowData() {
        return cowData;
    }

    /** Whether its reads go through the page cache: the origin's or the COW's buffered view. */
    boolean readsThroughPageCache() {
        return originData != origin.device() || cowData != cow.device();
    }

    /** The device the snapshot reads origin chunks from (its reads and its own copies). */
    Device originData() {
        return originData;
    }

    /**
     * Commits every exception made so far that is still deferred, and waits for it (suspend,
     * handover, merge start, remove); nothing to do in {@code directsync}.
     */
    void commitDeferred() {
        deferred.commitAll();
    }

    void markActive() {
        state.markActive();
    }

    boolean deviceSuspended() {
        return deviceSuspended.getAsBoolean();
    }

    String deviceName() {
        return state.deviceName();
    }

    // ---- state and handover ------------------------------------------------------------------------

    /** The handover (spec 8.5), called on the destination; see {@link SnapshotState#takeOver}. */
    void takeOver(Snapshot source) {
        state.takeOver(source.state);
    }

    /** A destination gives back the store it was built with for one of chunk size 0 (spec 8.2, step 6). */
    void replaceUnusedStore(ExceptionStore unsized) {
        state.replaceUnusedStore(unsized);
    }

    /** The source went away before the handover: this destination will be invalid. */
    void cancelHandover() {
        state.cancelHandover();
    }

    /** "Snapshot is marked invalid." at load: the COW says so; nothing is written. */
    void markLoadedInvalid() {
        state.markLoadedInvalid();
    }

    /** Invalidates once; see {@link SnapshotState#invalidate}. */
    void invalidate(InvalidationCause cause, String reason) {
        state.invalidate(cause, reason);
    }

    // ---- copy-out and the snapshot device's I/O ----------------------------------------------------

    /** What preserving origin chunk {@code chunk} in this snapshot needs; see {@link SnapshotIo#need}. */
    SnapshotIo.Need need(long chunk) {
        return io.need(chunk);
    }

    /** Bytes of origin chunk {@code chunk} a copy moves: the last chunk of an origin may be short. */
    long copyLength(long chunk) {
        return io.copyLength(chunk);
    }

    /** Maps I/O on the snapshot device; see {@link SnapshotIo#map}. */
    void map(IoRequest request) throws IOException, InterruptedException {
        io.map(request);
    }

    /** A read of the snapshot device that must not wait; see {@link SnapshotIo#readIfCached}. */
    boolean readIfCached(IoRequest request) throws IOException {
        return io.readIfCached(request);
    }

    /** Block status of this snapshot's view; see {@link SnapshotIo#allocation}. */
    Allocation allocation(long sector, long maxSectors) throws IOException {
        return io.allocation(sector, maxSectors);
    }

    /** Block status of this snapshot's view in one walk; see {@link SnapshotIo#allocationRuns}. */
    void allocationRuns(long sector, long maxSectors, AllocationSink sink) throws IOException {
        io.allocationRuns(sector, maxSectors, sink);
    }

    /** A discard with {@code discard_zeroes_cow} (spec 5.2); see {@link SnapshotIo#discard}. */
    void discard(IoRequest request, boolean passdown) throws IOException {
        io.discard(request, passdown);
    }

    // ---- the merge (snapshot-merge, spec 9.2, 9.3) -------------------------------------------------

    /** Maps a read or write on the merging device; see {@link MergeSteps#mapMerging}. */
    void mapMerging(IoRequest request, CopyOut copyOut, long splitSectors) throws IOException, InterruptedException {
        mergeSteps.mapMerging(request, copyOut, splitSectors);
    }

    /** Step 6: writes to chunks {@code [first, first + count)} queue from now on. */
    MergeSteps.MergeStep beginMergeStep(long first, long count) {
        return mergeSteps.begin(first, count);
    }

    /** Step 7: parks until no tracked write to the step's chunks is in flight. */
    void awaitTrackedWrites(MergeSteps.MergeStep step) throws InterruptedException {
        mergeSteps.awaitTrackedWrites(step);
    }

    /** Steps 12 and 13: forgets the step's chunks and releases the queued writes. */
    void finishMergeStep(MergeSteps.MergeStep step) throws CorruptStoreException {
        mergeSteps.finish(step);
    }

    /** Failure handling of a step: merge_failed, the ranges cleared, queued writes fail. */
    void failMergeStep() {
        mergeSteps.fail();
    }

    /** merge_failed without a step in progress (reading the store failed). */
    void markMergeFailed() {
        state.markMergeFailed();
    }

    // ---- status ----------------------------------------------------------------------------------

    /** Spec 6.1: Invalid, then Merge failed, then Overflow, else the store's usage. */
    SnapshotStatus status() throws IOException {
        return state.status();
    }

    /** Spec 6.2 without the features: origin, COW, store type and effective chunk size. */
    List<String> tableArgs() {
        ExceptionStore store = state.store();
        return List.of(
                origin.canonicalName(),
                cow.canonicalName(),
                store.typeArgument(),
                Long.toString(store.chunkSize().sectors()));
    }

    /**
     * Releases the table and store (after waiting for pending exceptions and committing the
     * deferred ones) and the devices.
     */
    void close() throws IOException {
        pending.awaitAll();
        deferred.commitAll();
        state.store().close();
        state.releaseComplete();
        try {
            cow.close();
        } finally {
            origin.close();
        }
    }
}
