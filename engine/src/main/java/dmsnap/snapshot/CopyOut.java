package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.device.Device;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * The origin-write algorithm of one origin device ({@code do_origin} / {@code __origin_write}
 * in dm-snap.c, spec 5.1 step 3): before a chunk of the origin is overwritten, every valid,
 * active, non-merging snapshot that lacks it gets a committed copy. Used by origin writes
 * through {@code snapshot-origin}, by writes to a merging device that go to the origin, and by
 * the merge loop for the range it is about to overwrite (spec 9.2 step 5).
 *
 * <p>Writes and the merge loop hold the origin's I/O lock shared while they copy out and write;
 * a handover holds it exclusively, so it never sees a half-done copy-out.
 */
final class CopyOut {
    private final Registry registry;
    private final DeviceResolver.Handle origin;
    private final ChunkCopier copier;

    CopyOut(Registry registry, DeviceResolver.Handle origin, ChunkCopier copier) {
        this.registry = registry;
        this.origin = origin;
        this.copier = copier;
    }

    /**
     * Writes {@code io} to the origin device, split at multiples of {@code splitSectors} (origin
     * writes never cross the split boundary, spec 5.1), under the origin's I/O lock. As dm core
     * maps a bio's clones one after the other before any completes, the copy-out of every piece
     * is started in sector order first (so its exceptions are allocated in that order and share
     * their commits), then all are waited for and re-checked, and the request goes to the origin
     * in one write.
     */
    void write(IoRequest io, long splitSectors) throws IOException, InterruptedException {
        Device device = origin.device();
        var quiesce = registry.originIoLock(origin.identity()).readLock();
        quiesce.lockInterruptibly();
        try {
            List<CompletableFuture<Boolean>> waits = new ArrayList<>();
            List<Planned> copies = new ArrayList<>();
            for (long at = io.sector(); at < io.endSector(); at = (at / splitSectors + 1) * splitSectors) {
                waits.addAll(start(at, copies));
            }
            launch(copies);
            if (!waits.isEmpty()) {
                awaitAll(waits);
                for (long at = io.sector(); at < io.endSector(); at = (at / splitSectors + 1) * splitSectors) {
                    preserve(at); // copies that failed or snapshots that changed meanwhile
                }
            }
            device.write(io.sector() << 9, io.buffer());
        } finally {
            quiesce.unlock();
        }
        if (io.fua()) {
            device.flush();
        }
    }

    /**
     * Copy-out for a write starting at {@code sector}, repeated until no snapshot needs
     * anything. The caller holds the origin's I/O lock shared.
     */
    void preserve(long sector) throws InterruptedException {
        while (true) {
            List<Planned> copies = new ArrayList<>();
            List<CompletableFuture<Boolean>> waits = start(sector, copies);
            launch(copies);
            if (waits.isEmpty()) {
                return;
            }
            awaitAll(waits);
        }
    }

    /**
     * Starts what preserving the chunks holding {@code sector} needs in every snapshot of the
     * origin and returns what to wait for: copies started now and exceptions already pending
     * (empty when nothing is needed). Snapshots with the same chunk size need the same origin
     * range: one copy reads it once and writes it into all of their COWs.
     */
    List<CompletableFuture<Boolean>> start(long sector) {
        List<Planned> copies = new ArrayList<>();
        List<CompletableFuture<Boolean>> waits = start(sector, copies);
        copies.forEach(c -> c.start(false));
        return waits;
    }

    /**
     * As {@link #start(long)}, but the copies are added to {@code copies} for {@link #launch};
     * their exceptions are allocated already.
     */
    private List<CompletableFuture<Boolean>> start(long sector, List<Planned> copies) {
        List<CompletableFuture<Boolean>> waits = new ArrayList<>();
        Map<Long, List<SnapshotIo.Copy>> copiesByChunkSize = new TreeMap<>();
        for (Snapshot s : registry.snapshotsOf(origin.identity())) {
            long chunkSectors = s.chunkSectors();
            if (chunkSectors == 0 || sector >= s.lengthSectors()) {
                continue;
            }
            switch (s.need(sector / chunkSectors)) {
                case null -> {}
                case SnapshotIo.Wait w -> waits.add(w.done());
                case SnapshotIo.Copy c -> {
                    copiesByChunkSize
                            .computeIfAbsent(chunkSectors, k -> new ArrayList<>())
                            .add(c);
                    waits.add(c.done());
                }
            }
        }
        copiesByChunkSize.forEach(
                (chunkSectors, needs) -> copies.add(new Planned(sector / chunkSectors, chunkSectors, needs)));
        return waits;
    }

    static void awaitAll(List<CompletableFuture<Boolean>> waits) throws InterruptedException {
        for (CompletableFuture<Boolean> f : waits) {
            try {
                f.get();
            } catch (ExecutionException e) {
                // A failed copy invalidated its snapshot; the next pass skips it.
            }
        }
    }

    /**
     * Starts copies a writer is about to wait for: all but the last on the copier's threads, the
     * last on this thread (which would only wait for it otherwise; a chunk copy takes less time
     * than handing it to another thread and back).
     */
    private static void launch(List<Planned> copies) {
        for (int i = 0; i < copies.size(); i++) {
            copies.get(i).start(i == copies.size() - 1);
        }
    }

    /** One origin range to copy into the COWs of {@code needs} (snapshots of one chunk size). */
    private final class Planned {
        private final long chunk;
        private final long chunkSectors;
        private final List<SnapshotIo.Copy> needs;

        Planned(long chunk, long chunkSectors, List<SnapshotIo.Copy> needs) {
            this.chunk = chunk;
            this.chunkSectors = chunkSectors;
            this.needs = needs;
        }

        /** Copies on the copier's threads, or on this one when {@code here} (then done on return). */
        void start(boolean here) {
            long start = chunk * chunkSectors << 9;
            long length = needs.getFirst().copyLength(chunk);
            CopyOp op = new CopyOp(
                    origin.device(),
                    start,
                    length,
                    needs.stream().map(SnapshotIo.Copy::destination).toList());
            (here ? copier.copyHere(op) : copier.copy(op)).whenComplete((result, failure) -> {
                for (int i = 0; i < needs.size(); i++) {
                    needs.get(i).copied(result, failure, i);
                }
            });
        }
    }
}
