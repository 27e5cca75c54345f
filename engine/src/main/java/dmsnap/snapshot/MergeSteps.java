package dmsnap.snapshot;

import dmsnap.store.ChunkSize;
import dmsnap.store.CorruptStoreException;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A snapshot-merge instance's side of the merge (dm-snap.c's {@code snapshot_merge_next_chunks},
 * {@code merge_callback}, {@code snapshot_merge_map}): the merging device's I/O (spec 9.3) and what
 * {@link Merger}'s steps do on the snapshot (spec 9.2): the chunks being merged, and the writes
 * tracked and queued around them.
 *
 * <p>Locks: {@link #steps} is guarded by the snapshot's lock ({@link SnapshotState}'s monitor);
 * the tracked writes by their own monitor, taken inside it. A step waits for tracked writes
 * without holding the snapshot's lock.
 */
final class MergeSteps {
    private final SnapshotState state;
    private final DeviceResolver.Handle origin;
    private final DeviceResolver.Handle cow;
    /** Writes on the merging device remapped to the COW, in flight, by chunk (spec 4, 9.3). */
    private final InFlightChunks trackedWrites = new InFlightChunks();
    /**
     * The merge steps in progress, oldest first: those copied and waiting for their batch's commit,
     * the one copying and the one taken next (each the kernel's {@code first_merging_chunk},
     * {@code num_merging_chunks}).
     */
    private final ArrayDeque<MergeStep> steps = new ArrayDeque<>();

    /**
     * The chunks {@code [first, first + count)} of one merge step; {@link #done} completes when
     * the step has committed (true) or failed (false): writes queued on its chunks wait on it.
     */
    record MergeStep(long first, long count, CompletableFuture<Boolean> done) {
        boolean holds(long chunk) {
            return chunk >= first && chunk < first + count;
        }
    }

    MergeSteps(SnapshotState state, DeviceResolver.Handle origin, DeviceResolver.Handle cow) {
        this.state = state;
        this.origin = origin;
        this.cow = cow;
    }

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
            synchronized (state) {
                if (state.isValid()) { // an invalid one (chunk size maybe 0) sends everything to the origin
                    chunkSize = state.store().chunkSize();
                    chunk = chunkSize.chunkOf(io.sector());
                    mapped = state.complete().lookup(chunk);
                    if (mapped >= 0 && write) {
                        for (MergeStep step : steps) {
                            if (step.holds(chunk)) {
                                queued = step.done();
                            }
                        }
                    }
                    if (queued == null && mapped >= 0 && write) {
                        trackedWrites.track(chunk);
                    }
                }
            }
            if (queued != null) {
                if (!SnapshotIo.awaitQuietly(queued)) {
                    throw new IOException(state.deviceName() + ": the merge of chunk " + chunk + " failed");
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
                trackedWrites.untrack(chunk);
            }
            return;
        }
    }

    /** Step 6: writes to chunks {@code [first, first + count)} queue from now on. */
    MergeStep begin(long first, long count) {
        MergeStep step = new MergeStep(first, count, new CompletableFuture<>());
        synchronized (state) {
            steps.addLast(step);
        }
        return step;
    }

    /** Step 7: parks until no tracked write to the step's chunks is in flight. */
    void awaitTrackedWrites(MergeStep step) throws InterruptedException {
        trackedWrites.awaitNoneIn(step.first(), step.count());
    }

    /**
     * Steps 12 and 13: forgets the step's chunks, highest first, and releases the queued
     * writes. A removal error (the kernel's words) fails the step instead.
     */
    void finish(MergeStep step) throws CorruptStoreException {
        synchronized (state) {
            state.complete().removeRangeForMerge(step.first(), step.count()); // highest first, as the kernel
            steps.remove(step);
        }
        step.done().complete(true);
    }

    /** Failure handling of a step: merge_failed, the ranges cleared, queued writes fail. */
    void fail() {
        List<MergeStep> failed;
        synchronized (state) {
            state.markMergeFailed();
            failed = List.copyOf(steps);
            steps.clear();
        }
        for (MergeStep step : failed) {
            step.done().complete(false);
        }
    }
}
