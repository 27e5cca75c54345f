package dmsnap.store;

import dmsnap.store.persistent.PersistentExceptionStore;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a snapshot keeps its exceptions: the kernel's {@code dm_exception_store_type} ops
 * ({@code dm-exception-store.h}). {@link PersistentExceptionStore} ({@code P}, {@code PO}) keeps
 * them on the COW device in the kernel's format; {@link TransientExceptionStore} ({@code N})
 * only in memory.
 *
 * <p>Life cycle: created by {@link ExceptionStores} when a snapshot table is loaded; {@link
 * #load} once (not for a handover destination, which receives a live store instead); then any
 * number of {@link #prepare}/{@link #commit} pairs, merge steps, {@link #invalidate}; {@link
 * #close} when the snapshot is destroyed. All methods are thread-safe.
 */
public sealed interface ExceptionStore extends AutoCloseable permits PersistentExceptionStore, TransientExceptionStore {

    /** What {@link #load} found. */
    enum LoadResult {
        /** The exceptions were replayed; the snapshot is usable. */
        VALID,
        /** The COW says the snapshot was invalidated; nothing was replayed ("Snapshot is marked invalid."). */
        INVALID
    }

    /** "P" or "N", the type letter table status prints. */
    String typeLetter();

    /** The effective chunk size (the COW header's for an existing persistent COW). */
    ChunkSize chunkSize();

    /**
     * read_metadata: reads (or, for a new persistent COW, initialises) the metadata and replays
     * every stored remap into {@code sink} in on-disk order.
     *
     * @throws CorruptStoreException when the metadata is unusable (the table load then fails
     *                               with "Failed to read snapshot metadata: " and its message)
     */
    LoadResult load(RemapSink sink) throws IOException;

    /**
     * prepare_exception: allocates the COW chunk for {@code oldChunk}.
     *
     * @throws StoreFullException when the COW has no room (overflow / invalidation is the caller's call)
     */
    PendingRemap prepare(long oldChunk) throws IOException;

    /**
     * prepare_exception of the origin chunks {@code firstOldChunk}, {@code firstOldChunk + 1}, ...
     * ({@code count} of them, one write's), in that order and with consecutive sequence numbers:
     * as many as can be made, at least the first. When a later one fails (no room, or an I/O
     * error reading the COW's size) those made are returned: they are the caller's to commit,
     * and its next prepare meets the failure. A store may read the COW's size once for all of
     * them (a 1 MiB write of 4 KiB chunks allocates 256).
     *
     * @throws StoreFullException when not even the first fits
     * @throws IOException        the first could not be made for another reason
     */
    default List<PendingRemap> prepare(long firstOldChunk, int count) throws IOException {
        List<PendingRemap> remaps = new ArrayList<>(count);
        remaps.add(prepare(firstOldChunk));
        try {
            while (remaps.size() < count) {
                remaps.add(prepare(firstOldChunk + remaps.size()));
            }
        } catch (IOException rest) {
            // The remaps made are the caller's to commit; its next prepare says why the rest was not made.
        }
        return remaps;
    }

    /**
     * commit_exception: records {@code remap} once its copy has finished ({@code copySucceeded}
     * false invalidates the store). May be called in any order; remaps are committed and
     * {@code callback}s run in allocation order, each only after its entry is durable, several
     * sharing one flush. The callback may run on this thread or on another committer's.
     */
    void commit(PendingRemap remap, boolean copySucceeded, CommitCallback callback);

    /**
     * commit_exception, deferred (the cache modes {@code none} and {@code writeback}): as {@link
     * #commit}, but the entry need not be written before others ask for a round, even when it
     * fills an area: the next round a {@link #commit}, {@link #commitThrough}, {@link #sync} or
     * too many deferred remaps start takes it along. The callback runs once it is durable (or never can be), in
     * allocation order with every other commit. Does not wait for the round that too many
     * deferred remaps start (the store runs it on a thread of its own), unless far more wait
     * while one runs: then it waits for that round to end (backpressure).
     */
    void commitDeferred(PendingRemap remap, boolean copySucceeded, CommitCallback callback);

    /**
     * {@link #commit} of {@code run}, remaps with consecutive sequence numbers (one write's new
     * exceptions), each answered through {@code callback}; a store may take them in at once.
     */
    default void commit(List<PendingRemap> run, boolean copySucceeded, CommitCallback callback) {
        for (PendingRemap remap : run) {
            commit(remap, copySucceeded, callback);
        }
    }

    /** {@link #commitDeferred} of {@code run}, as {@link #commit(List, boolean, CommitCallback)}. */
    default void commitDeferred(List<PendingRemap> run, boolean copySucceeded, CommitCallback callback) {
        for (PendingRemap remap : run) {
            commitDeferred(remap, copySucceeded, callback);
        }
    }

    /**
     * Asks for every remap with a sequence up to {@code sequence} to be written as soon as all of
     * them have been committed; does not wait (the round may run on this thread when it can start
     * at once). An origin write waiting for a deferred exception, and the commit interval, use it.
     */
    void commitThrough(long sequence);

    /** The sequence the next {@link #prepare} hands out: every remap before it has been prepared. */
    long nextSequence();

    /**
     * Waits until every remap prepared before this call is durable, writing those still deferred
     * (NBD's FLUSH, a FUA write, suspend, remove). With {@code flushData} every COW write that
     * completed before this call is durable too, by the round's own flush where one ran after the
     * call, else by a flush here. Must not be called by a thread that has prepared remaps it has
     * not committed yet (it would wait for itself).
     *
     * @throws IOException the store is invalid (a remap could not be committed, and its callback
     *                     said so, or it was invalid before) or the flush failed
     */
    void sync(boolean flushData) throws IOException, InterruptedException;

    /**
     * prepare_merge: the last run of consecutive entries (within one area) before the runs
     * already prepared and not yet committed, or null when nothing is left before them. With
     * nothing prepared (the kernel's one step at a time) that is the last run of the list.
     *
     * @throws IOException reading an earlier area failed
     */
    MergeRun prepareMerge() throws IOException;

    /**
     * commit_merge: forgets the last {@code count} entries durably. A failure releases every
     * prepared run (the next prepare starts from the last entry again).
     */
    void commitMerge(int count) throws IOException;

    /**
     * commit_merge of several prepared runs at once, the last first ({@code counts[0]} entries
     * from the end, then {@code counts[1]} before them, ...), durable with one flush. Only for
     * runs whose data is all durable on the origin: then any subset of the area writes reaching
     * the disk first is a valid list. On an error the runs stay forgotten in memory (their data
     * is merged), the disk may hold either version of each area, and the prepared runs are released.
     */
    default void commitMerges(int... counts) throws IOException {
        for (int count : counts) {
            commitMerge(count);
        }
    }

    /** Forgets the runs prepared and not committed (a merge that stopped or failed): the next prepare starts at the end. */
    void releaseMerges();

    /** Whether prepare_merge/commit_merge are supported (persistent only). */
    boolean supportsMerge();

    /** drop_snapshot: marks the store invalid (persistently for {@code P}). Idempotent. */
    void invalidate();

    /** False once invalidated or after a failed metadata write. */
    boolean isValid();

    /**
     * Why the store's own I/O made it invalid (a metadata write that failed: "writing exception
     * area 3 failed: pwrite(...) failed: ENOSPC (No space left on device)"), for the snapshot's
     * invalidation line; null while that has not happened. The store does not log it itself.
     */
    String failure();

    /** allocated/total metadata, from the current COW size. */
    StoreUsage usage() throws IOException;

    /** "PO" semantics: a full COW on a snapshot write overflows instead of invalidating. */
    boolean overflowSupported();

    /** Set from the table that owns the store (a handover passes the store to a table with its own flag). */
    void setOverflowSupported(boolean supported);

    /** {@code P}, {@code PO} or {@code N}: the store type argument table status prints. */
    default String typeArgument() {
        return typeLetter() + (overflowSupported() ? "O" : "");
    }

    /** Releases memory and mappings; writes nothing. Idempotent. */
    @Override
    void close();
}
