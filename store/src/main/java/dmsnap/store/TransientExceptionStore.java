package dmsnap.store;

import dmsnap.store.device.Device;
import java.io.IOException;
import java.util.List;

/**
 * {@code N}: exceptions live only in memory ({@code dm-snap-transient.c}). The COW holds data
 * chunks from chunk 0 on, nothing else is written, and everything is gone when the store is
 * closed (unless a handover passed it on). A bump allocator in sectors; commit reports the copy
 * result as soon as every earlier remap has committed (allocation order, as for every store).
 */
public final class TransientExceptionStore implements ExceptionStore {
    private final Device cow;
    private final ChunkSize chunkSize;
    /** Guarded by this: the next free sector, and validity. */
    private long nextFreeSector;

    private long nextSequence;
    private boolean valid = true;
    private final InOrderCommits<Completion> inOrder = new InOrderCommits<>();
    /** Never set by the table's options ("NO" is plain "N"); a handover copies the destination's flag. */
    private volatile boolean overflowSupported;

    /** Reserves a sparse COW file's blocks ahead of {@link #nextFreeSector}. */
    private final AllocateAhead ahead;

    /** A chunk size of 0 is only for a handover destination, which never allocates. */
    public TransientExceptionStore(Device cow, ChunkSize chunkSize) {
        this.cow = cow;
        this.chunkSize = chunkSize;
        this.ahead = new AllocateAhead(cow, AllocateAhead.SHARED);
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
    public PendingRemap prepare(long oldChunk) throws IOException {
        PendingRemap remap;
        long newChunkBytes;
        synchronized (this) {
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
            remap = new PendingRemap(oldChunk, newChunk, nextSequence++);
            newChunkBytes = (nextFreeSector - chunkSize.sectors()) << 9;
        }
        ahead.allocated(newChunkBytes);
        return remap;
    }

    @Override
    public void commit(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {
        List<Completion> ready;
        synchronized (this) {
            ready = inOrder.arrive(remap.sequence(), new Completion(remap, copySucceeded, callback));
        }
        for (Completion c : ready) {
            boolean ok;
            synchronized (this) {
                if (!c.copySucceeded()) {
                    valid = false;
                }
                ok = valid;
            }
            c.callback().committed(c.remap(), ok);
        }
    }

    /** Nothing is written: a deferred commit completes as soon as it is in order, as any other. */
    @Override
    public void commitDeferred(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {
        commit(remap, copySucceeded, callback);
    }

    @Override
    public void commitThrough(long sequence) {
        // Every commit completes as soon as it is in order: nothing waits for a round.
    }

    @Override
    public synchronized long nextSequence() {
        return nextSequence;
    }

    /** Nothing of the store's is ever durable; {@code flushData} still flushes what was written to the COW. */
    @Override
    public void sync(boolean flushData) throws IOException {
        if (flushData) {
            cow.flush();
        }
    }

    private record Completion(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {}

    @Override
    public MergeRun prepareMerge() {
        throw new UnsupportedOperationException("the transient store cannot merge");
    }

    @Override
    public void commitMerge(int count) {
        throw new UnsupportedOperationException("the transient store cannot merge");
    }

    @Override
    public void releaseMerges() {
        // Nothing is ever prepared.
    }

    /** Only a failed copy invalidates a transient store: it has no I/O of its own. */
    @Override
    public String failure() {
        return null;
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

    /** Always {@code N}: the kernel prints no overflow flag for a transient store. */
    @Override
    public String typeArgument() {
        return "N";
    }

    @Override
    public void close() {
        // Nothing else is held: the COW device belongs to the snapshot.
        ahead.close();
    }
}
