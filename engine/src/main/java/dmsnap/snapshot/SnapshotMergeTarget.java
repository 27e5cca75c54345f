package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableLoadException;
import dmsnap.target.Allocation;
import dmsnap.target.AllocationSink;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.TargetType;
import java.io.IOException;
import java.util.List;

/**
 * {@code snapshot-merge <origin> <cow> <P|PO> <chunk> [<#features> <feature>...]} (spec 1.4,
 * 9): loaded on the origin device in place of its snapshot-origin table, it rolls the origin
 * back to the snapshot. Normally the live snapshot's store is handed over to it (the snapshot's
 * device is suspended, this device resumed); without a live instance it reads the COW itself,
 * which is how an interrupted merge continues after a restart. Only persistent stores merge;
 * the kernel's refusals are "A snapshot is already merging." and "Snapshot exception store does
 * not support snapshot-merge.".
 *
 * <p>While merging, the device reads what the snapshot read ({@link Snapshot#mapMerging}); the
 * {@link Merger} runs from every resume to the next presuspend. Flushes go to the origin and to
 * the COW (two flushes per flush); discards (only with {@code discard_zeroes_cow}) complete at
 * once and do nothing.
 */
public final class SnapshotMergeTarget implements OverOrigin {
    private final Snapshot snapshot;
    private final Registry registry;
    private final CopyOut copyOut;
    private final boolean discardZeroesCow;
    private final boolean discardPassdownOrigin;
    /** The max I/O length: the store's chunk size after a fresh load, the origin's smallest at resume. */
    private volatile long maxIoSectors;

    private SnapshotMergeTarget(
            SnapshotTarget.Constructed c, Registry registry, ChunkCopier copier, MergeSettings settings) {
        this.snapshot = c.snapshot();
        this.registry = registry;
        this.discardZeroesCow = c.discardZeroesCow();
        this.discardPassdownOrigin = c.discardPassdownOrigin();
        this.copyOut = new CopyOut(registry, snapshot.originHandle(), copier);
        this.maxIoSectors = snapshot.chunkSectors();
        snapshot.attachMerger(new Merger(snapshot, copyOut, registry, () -> maxIoSectors, settings));
    }

    /**
     * The {@code snapshot-merge} target type over a registry and a copier; commit times go to
     * {@code commits}; merges batch their commits as {@code settings} say.
     */
    public static TargetType type(
            Registry registry, ChunkCopier copier, CommitObserver commits, MergeSettings settings) {
        return type(registry, copier, commits, settings, CommitTimer.shared());
    }

    /** The same, deferred commits (none made while merging) on {@code timer}. */
    static TargetType type(
            Registry registry, ChunkCopier copier, CommitObserver commits, MergeSettings settings, CommitTimer timer) {
        return TargetType.of(
                "snapshot-merge",
                "1.5.0",
                (context, args) -> new SnapshotMergeTarget(
                        SnapshotTarget.construct(context, args, registry, copier, commits, timer, true),
                        registry,
                        copier,
                        settings));
    }

    Snapshot snapshot() {
        return snapshot;
    }

    @Override
    public String typeName() {
        return "snapshot-merge";
    }

    @Override
    public void map(IoRequest io) throws IOException, InterruptedException {
        switch (io.op()) {
            case FLUSH -> {
                // Two flush bios: one to the origin, one to the COW.
                snapshot.originHandle().device().flush();
                snapshot.cowHandle().device().flush();
            }
            case DISCARD -> {
                // Once merging, discards no longer effect change.
            }
            case READ, WRITE -> snapshot.mapMerging(io, copyOut, Math.max(1, maxIoSectors));
            default ->
                throw new IOException(snapshot.deviceName() + ": " + io.op() + " is not supported by snapshot-merge");
        }
    }

    /** What the merging device reads: the snapshot's exceptions not merged yet, the origin elsewhere. */
    @Override
    public Allocation allocation(long sector, long maxSectors) throws IOException {
        return snapshot.allocation(sector, maxSectors);
    }

    @Override
    public void allocationRuns(long sector, long maxSectors, AllocationSink sink) throws IOException {
        snapshot.allocationRuns(sector, maxSectors, sink);
    }

    /** The merged view: the merging snapshot's exceptions not merged yet are changes too. */
    @Override
    public ChangeMap changes() {
        return new ChangeMap(registry, snapshot.originIdentity(), snapshot);
    }

    @Override
    public boolean readsThroughPageCache() {
        return snapshot.readsThroughPageCache();
    }

    @Override
    public boolean supportsDiscard() {
        return discardZeroesCow;
    }

    @Override
    public long maxIoSectors() {
        return maxIoSectors;
    }

    /**
     * As {@code snapshot} (spec 6.1), with {@link SnapshotStatus.MergeFailed} after
     * {@link SnapshotStatus.Invalid}; the usage is the merge's progress (it shrinks to the
     * metadata sectors as chunks merge), which lvm2 polls.
     */
    @Override
    public SnapshotStatus status() throws IOException {
        return snapshot.status();
    }

    /** As {@code snapshot} (spec 6.2). */
    @Override
    public List<String> tableArgs() {
        return SnapshotTarget.tableArgs(snapshot, discardZeroesCow, discardPassdownOrigin);
    }

    @Override
    public void preresume() throws TableLoadException {
        SnapshotTarget.checkHandoverBeforeResume(snapshot, registry, "snapshot-merge");
    }

    /**
     * The snapshot resume (handover if this is a pending destination), then the max I/O length
     * becomes the smallest chunk size on the origin, and merging starts (spec 8.4, 9.1).
     */
    @Override
    public void resume() {
        SnapshotTarget.resume(snapshot, registry);
        long min = registry.minimumChunkSectors(snapshot.originIdentity());
        maxIoSectors = min > 0 ? min : snapshot.chunkSectors();
        // The merge takes entries from the store's areas: every exception must be in them. The
        // source's suspend committed its deferred ones; this makes sure of it.
        snapshot.commitDeferred();
        snapshot.merger().start();
    }

    /** merge_presuspend: the merge stops after the step in progress. */
    @Override
    public void presuspend() {
        snapshot.merger().stop();
    }

    @Override
    public void close() throws IOException {
        SnapshotTarget.destroy(snapshot, registry);
    }

    /**
     * How far the merge is, for the merge flow (lvm2 polls the status line for the same):
     * exceptions left in memory, whether the loop runs, and whether it is done, which the status
     * line cannot tell once it says {@code Merge failed} (a resume still finishes the merge).
     *
     * @param remainingChunks chunks still on the COW
     * @param complete        nothing is left, in memory or in the store (allocated == metadata)
     */
    public record Progress(
            boolean valid, boolean failed, boolean running, long remainingChunks, long chunkBytes, boolean complete) {}

    public Progress progress() throws IOException {
        long remaining = snapshot.completeTable().size();
        boolean valid = snapshot.isValid();
        var usage = snapshot.store().usage();
        boolean complete = valid
                && remaining == 0
                && usage.allocatedSectors() == usage.metadataSectors()
                && snapshot.chunkSectors() > 0;
        return new Progress(
                valid,
                snapshot.isMergeFailed(),
                snapshot.merger().isRunning(),
                remaining,
                snapshot.chunkSectors() << 9,
                complete);
    }
}
