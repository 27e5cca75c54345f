package dmsnap.snapshot;

import dmsnap.store.device.Device;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Where a snapshot's data goes in its cache mode: the device's page-cache view in {@code
 * writeback} ({@link CacheMode#dataView}), except for a stream of new chunks, which goes to the
 * device itself (O_DIRECT) as in {@code none}.
 *
 * <p>Why: a run of whole new chunks of at least {@link #DIRECT_RUN_BYTES} is a stream (a copy
 * into the snapshot, a restore, 1 MiB writes); nothing reads it back soon, and every byte of it
 * must reach the disk at the next commit round, whose data flush then writes back what the page
 * cache took in. On this project's test disk (virtio, ext4) the page cache's write-back of new
 * chunks ran at about half the rate of the same writes made with O_DIRECT (1 MiB first-touch
 * writes at qd16: 543-619 MiB/s against 1269-1403 with 4 KiB chunks; bench/RESULTS.md). The
 * durability rules do not change: a direct write is as undurable as a cached one until the
 * round's flush (fdatasync of either descriptor flushes the device), and Linux keeps the two
 * descriptors coherent (a direct write drops the cached pages it covers).
 */
final class PageCacheBypass {
    /** Runs of new chunks at least this long bypass the page cache. */
    static final long DIRECT_RUN_BYTES = 256 << 10;

    private final Device view;
    private final Device direct;

    private PageCacheBypass(Device view, Device direct) {
        this.view = view;
        this.direct = direct;
    }

    /**
     * The data path of {@code device} in {@code mode}.
     *
     * @throws IOException the page-cache view could not be opened
     */
    static PageCacheBypass of(CacheMode mode, Device device) throws IOException {
        return new PageCacheBypass(mode.dataView(device), device);
    }

    /** The view every other read and write goes through. */
    Device view() {
        return view;
    }

    /**
     * Where {@code data}, the whole of a run of new chunks written at {@code offsetBytes}, goes:
     * the device itself when the view is a page cache, the run is long enough and the device's
     * O_DIRECT rules allow it; else the view.
     */
    Device forNewChunks(long offsetBytes, MemorySegment data) {
        if (view == direct || data.byteSize() < DIRECT_RUN_BYTES) {
            return view;
        }
        int block = direct.logicalBlockBytes();
        boolean aligned = offsetBytes % block == 0
                && data.byteSize() % block == 0
                && data.address() % direct.bufferAlignmentBytes() == 0;
        return aligned ? direct : view;
    }
}
