package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;

/**
 * Told how long each exception commit took: from the snapshot's commit request to the store
 * ({@code commit_exception}) to the store's callback saying the exception is durable (or never
 * will be), and when a snapshot is invalidated at run time. The daemon's metrics record it; the
 * store itself knows nothing of metrics.
 */
@FunctionalInterface
public interface CommitObserver {
    /** Records nothing. */
    CommitObserver NONE = (store, nanos, success) -> {};

    /**
     * Called once per commit, on the thread that runs the store's callback (the committer's,
     * possibly another snapshot I/O's); must be quick and must not block.
     *
     * @param store        the store that committed
     * @param latencyNanos commit request to callback, in nanoseconds
     * @param success      false: the commit failed and the snapshot is being invalidated
     */
    void committed(ExceptionStore store, long latencyNanos, boolean success);

    /**
     * Called once per invalidation at run time, after its ERROR line (not for a COW loaded
     * invalid, nor for a handover source, which is invalid by design); on the thread that
     * invalidated (a committer, a copier, a writer); must be quick and must not block.
     *
     * @param device the snapshot's device name
     * @param cause  why, as the kernel's line says
     */
    default void invalidated(String device, InvalidationCause cause) {}
}
