package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.Device;
import dmsnap.target.Allocation;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import dmsnap.target.TargetType;
import java.io.IOException;
import java.util.List;

/**
 * {@code snapshot-origin <origin>} (spec 1.1, 5.1): reads pass through; a write is split at the
 * split boundary (the smallest chunk size of the origin's snapshots, computed at this target's
 * resume) and each piece waits until every valid, active snapshot that lacks its chunk has a
 * committed copy, then goes to the origin. In the {@code writeback} cache mode reads go through
 * the origin's page cache, as a writeback snapshot's do; writes stay O_DIRECT, and Linux drops
 * the cached pages of what they overwrite.
 */
public final class OriginTarget implements OverOrigin {
    /** With no snapshots the kernel uses 2^31 sectors. */
    static final long NO_SPLIT = 1L << 31;

    private final DeviceResolver.Handle origin;
    /** Where reads go: the origin device, or its page-cache view in {@code writeback}. */
    private final Device reads;

    private final Registry registry;
    private final CopyOut copyOut;
    /** Written only at resume (the device is suspended then), read by writes. */
    private volatile long splitBoundary = NO_SPLIT;

    private OriginTarget(DeviceResolver.Handle origin, Device reads, Registry registry, ChunkCopier copier) {
        this.origin = origin;
        this.reads = reads;
        this.registry = registry;
        this.copyOut = new CopyOut(registry, origin, copier);
    }

    public static TargetType type(Registry registry, ChunkCopier copier) {
        return TargetType.of("snapshot-origin", "1.9.0", (context, args) -> {
            if (args.size() != 1) {
                throw args.fail("origin: incorrect number of arguments");
            }
            DeviceResolver.Handle handle;
            try {
                handle = context.open(args.next(), context.tableAccess());
            } catch (IOException e) {
                throw args.failDevice("Cannot get target device", e);
            }
            if (context.lengthSectors() > handle.device().sizeSectors()) {
                try {
                    handle.close();
                } catch (IOException e) {
                    // Reporting the size problem matters more.
                }
                throw args.fail("Device " + handle.canonicalName() + " too small for target");
            }
            Device reads;
            try {
                reads = context.cacheMode().dataView(handle.device());
            } catch (IOException e) {
                try {
                    handle.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw args.failDevice("Cannot get target device", e);
            }
            return new OriginTarget(handle, reads, registry, copier);
        });
    }

    /** Where reads go (for tests). */
    Device reads() {
        return reads;
    }

    @Override
    public boolean readsThroughPageCache() {
        return reads != origin.device();
    }

    DeviceResolver.Handle originHandle() {
        return origin;
    }

    @Override
    public String typeName() {
        return "snapshot-origin";
    }

    @Override
    public void map(IoRequest io) throws IOException, InterruptedException {
        switch (io.op()) {
            case READ -> reads.read(io.sector() << 9, io.buffer());
            case FLUSH -> origin.device().flush();
            case WRITE -> copyOut.write(io, splitBoundary);
            default -> throw new IOException("snapshot-origin does not support " + io.op());
        }
    }

    /** Reads pass through, as {@link #map}'s: from the page cache when it holds them. */
    @Override
    public boolean readIfCached(IoRequest io) throws IOException {
        return reads.readIfCached(io.sector() << 9, io.buffer());
    }

    @Override
    public Allocation allocation(long sector, long maxSectors) throws IOException {
        return Allocation.of(origin.device().extentAt(sector << 9, maxSectors << 9));
    }

    @Override
    public ChangeMap changes() {
        return new ChangeMap(registry, origin.identity(), null);
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

    /** Spec 6.3: nothing. */

    /** Spec 6.3: {@code <origin>}, by its canonical name. */
    @Override
    public List<String> tableArgs() {
        return List.of(origin.canonicalName());
    }

    @Override
    public void close() throws IOException {
        origin.close();
    }
}
