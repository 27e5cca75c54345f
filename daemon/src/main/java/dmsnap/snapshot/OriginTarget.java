package dmsnap.snapshot;

import dmsnap.device.BackingDevices;
import dmsnap.device.IoRequest;
import dmsnap.device.MapOrder;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.device.Device;
import dmsnap.table.TableLoadException;
import dmsnap.target.StatusType;
import dmsnap.target.Target;
import dmsnap.target.TargetArgs;
import dmsnap.target.TargetContext;
import dmsnap.target.TargetType;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * {@code snapshot-origin <origin>} (spec 1.1, 5.1): reads pass through; a write is split at the
 * split boundary (the smallest chunk size of the origin's snapshots, computed at this target's
 * resume) and each piece waits until every valid, active snapshot that lacks its chunk has a
 * committed copy, then goes to the origin.
 */
public final class OriginTarget implements Target {
    /** With no snapshots the kernel uses 2^31 sectors. */
    static final long NO_SPLIT = 1L << 31;

    private final BackingDevices.Handle origin;
    private final Registry registry;
    private final ChunkCopier copier;
    private volatile long splitBoundary = NO_SPLIT;

    private OriginTarget(BackingDevices.Handle origin, Registry registry, ChunkCopier copier) {
        this.origin = origin;
        this.registry = registry;
        this.copier = copier;
    }

    public static TargetType type(Registry registry, ChunkCopier copier) {
        return new TargetType() {
            @Override
            public String name() {
                return "snapshot-origin";
            }

            @Override
            public String version() {
                return "1.9.0";
            }

            @Override
            public Target create(TargetContext context, TargetArgs args) throws TableLoadException {
                if (args.size() != 1) {
                    throw args.fail("origin: incorrect number of arguments");
                }
                BackingDevices.Handle handle;
                try {
                    handle = context.devices().open(args.next());
                } catch (IOException e) {
                    throw args.fail("Cannot get target device");
                }
                if (context.lengthSectors() > handle.device().sizeSectors()) {
                    try {
                        handle.close();
                    } catch (IOException e) {
                        // Reporting the size problem matters more.
                    }
                    throw args.fail("Device " + handle.canonicalName() + " too small for target");
                }
                return new OriginTarget(handle, registry, copier);
            }
        };
    }

    @Override
    public String typeName() {
        return "snapshot-origin";
    }

    @Override
    public void map(IoRequest io) throws IOException, InterruptedException {
        Device device = origin.device();
        switch (io.op()) {
            case READ -> device.read(io.sector() << 9, io.buffer());
            case FLUSH -> device.flush();
            case WRITE -> {
                // The device split the write at the split boundary (splitSectors): one chunk at most.
                var quiesce = registry.originIoLock(origin.identity()).readLock();
                quiesce.lockInterruptibly();
                try {
                    preserveAll(io.sector());
                    device.write(io.sector() << 9, io.buffer());
                } finally {
                    quiesce.unlock();
                }
                if (io.fua()) {
                    device.flush();
                }
            }
            default -> throw new IOException("snapshot-origin does not support " + io.op());
        }
    }

    /**
     * Copy-out for a write starting at {@code sector}, repeated until no snapshot needs
     * anything. Snapshots with the same chunk size need the same origin range: one copy reads
     * it once and writes it into all of their COWs.
     */
    private void preserveAll(long sector) throws InterruptedException {
        while (true) {
            List<CompletableFuture<Boolean>> waits = new ArrayList<>();
            Map<Long, List<Snapshot.Copy>> copiesByChunkSize = new TreeMap<>();
            for (Snapshot s : registry.snapshotsOf(origin.identity())) {
                long chunkSectors = s.chunkSectors();
                if (chunkSectors == 0 || sector >= s.lengthSectors()) {
                    continue;
                }
                switch (s.need(sector / chunkSectors)) {
                    case null -> { }
                    case Snapshot.Wait w -> waits.add(w.done());
                    case Snapshot.Copy c -> {
                        copiesByChunkSize.computeIfAbsent(chunkSectors, k -> new ArrayList<>()).add(c);
                        waits.add(c.done());
                    }
                }
            }
            copiesByChunkSize.forEach((chunkSectors, copies) -> startCopy(sector / chunkSectors, chunkSectors, copies));
            MapOrder.mapped(); // the exceptions this write needs are allocated: the next piece may map
            if (waits.isEmpty()) {
                return;
            }
            for (CompletableFuture<Boolean> f : waits) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    // A failed copy invalidated its snapshot; the next pass skips it.
                }
            }
        }
    }

    private void startCopy(long chunk, long chunkSectors, List<Snapshot.Copy> copies) {
        long start = chunk * chunkSectors << 9;
        long length = copies.getFirst().snapshot().copyLength(chunk);
        List<CopyOp.Destination> destinations = copies.stream().map(Snapshot.Copy::destination).toList();
        copier.copy(new CopyOp(origin.device(), start, length, destinations)).whenComplete((result, failure) -> {
            for (int i = 0; i < copies.size(); i++) {
                copies.get(i).copied(failure == null && result.succeeded(i));
            }
        });
    }

    /** Writes are split at the split boundary (origin_map's dm_accept_partial_bio); reads never. */
    @Override
    public long splitSectors(IoRequest.Op op) {
        return op == IoRequest.Op.WRITE ? splitBoundary : 0;
    }

    /** The split boundary is computed here only, as the kernel's origin_resume does. */
    @Override
    public void resume() {
        long min = registry.minimumChunkSectors(origin.identity());
        splitBoundary = min == 0 ? NO_SPLIT : min;
    }

    @Override
    public int logicalBlockBytes() {
        return origin.device().logicalBlockBytes();
    }

    @Override
    public String status(StatusType type) {
        return type == StatusType.TABLE ? origin.canonicalName() : "";
    }

    @Override
    public void close() throws IOException {
        origin.close();
    }
}
