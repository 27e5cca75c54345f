package dmsnap.store;

import dmsnap.store.device.Device;
import java.io.IOException;

/**
 * {@code N}: exceptions live only in memory ({@code dm-snap-transient.c}). The COW holds data
 * chunks from chunk 0 on, nothing else is written, and everything is gone when the store is
 * closed (unless a handover passed it on). A bump allocator in sectors; commit reports the copy
 * result at once.
 */
public final class TransientExceptionStore implements ExceptionStore {
    private final Device cow;
    private final ChunkSize chunkSize;
    /** Guarded by this: the next free sector, and validity. */
    private long nextFreeSector;
    private long nextSequence;
    private boolean valid = true;
    /** Never set by the table's options ("NO" is plain "N"); a handover copies the destination's flag. */
    private volatile boolean overflowSupported;

    /** A chunk size of 0 is only for a handover destination, which never allocates. */
    public TransientExceptionStore(Device cow, ChunkSize chunkSize) {
        this.cow = cow;
        this.chunkSize = chunkSize;
    }

    @Override
    public String typeLetter() {
        return "N";
    }

    @Override
    public ChunkSize chunkSize() {
        return chunkSize;
    }

    /** Nothing is stored, so nothing is read. */
    @Override
    public LoadResult load(RemapSink sink) {
        return LoadResult.VALID;
    }

    @Override
    public synchronized PendingRemap prepare(long oldChunk) throws IOException {
        if (!chunkSize.isSet()) {
            throw new IllegalStateException("Chunk size not set");
        }
        long cowSectors = cow.sizeSectors();
        if (cowSectors < nextFreeSector + chunkSize.sectors()) {
            cowSectors = cow.refreshSize() >>> 9;
            if (cowSectors < nextFreeSector + chunkSize.sectors()) {
                throw new StoreFullException("COW " + cow.name() + " is full (" + cowSectors + " sectors)");
            }
        }
        long newChunk = nextFreeSector >>> chunkSize.shift();
        nextFreeSector += chunkSize.sectors();
        return new PendingRemap(oldChunk, newChunk, nextSequence++);
    }

    @Override
    public void commit(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {
        boolean ok;
        synchronized (this) {
            if (!copySucceeded) {
                valid = false;
            }
            ok = valid;
        }
        callback.committed(remap, ok);
    }

    @Override
    public MergeRun prepareMerge() {
        throw new UnsupportedOperationException("the transient store cannot merge");
    }

    @Override
    public void commitMerge(int count) {
        throw new UnsupportedOperationException("the transient store cannot merge");
    }

    @Override
    public boolean supportsMerge() {
        return false;
    }

    @Override
    public synchronized void invalidate() {
        valid = false;
    }

    @Override
    public synchronized boolean isValid() {
        return valid;
    }

    @Override
    public synchronized StoreUsage usage() throws IOException {
        return new StoreUsage(nextFreeSector, cow.refreshSize() >>> 9, 0);
    }

    @Override
    public boolean overflowSupported() {
        return overflowSupported;
    }

    @Override
    public void setOverflowSupported(boolean supported) {
        overflowSupported = supported;
    }

    /** Always {@code N <chunk>}: the kernel prints no overflow flag for a transient store. */
    @Override
    public String tableArgs() {
        return "N " + chunkSize;
    }

    @Override
    public void close() {
        // Nothing is held: the COW device belongs to the snapshot.
    }
}
