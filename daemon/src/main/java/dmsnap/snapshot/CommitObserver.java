package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;

/**
 * Told how long each exception commit took: from the snapshot's commit request to the store
 * ({@code commit_exception}) to the store's callback saying the exception is durable (or never
 * will be). The daemon's metrics record it; the store itself knows nothing of metrics.
 */
@FunctionalInterface
public interface CommitObserver {
    /** Records nothing. */
    CommitObserver NONE = (store, nanos, success) -> { };

    /**
     * Called once per commit, on the thread that runs the store's callback (the committer's,
     * possibly another snapshot I/O's); must be quick and must not block.
     *
     * @param store        the store that committed
     * @param latencyNanos commit request to callback, in nanoseconds
     * @param success      false: the commit failed and the snapshot is being invalidated
     */
    void committed(ExceptionStore store, long latencyNanos, boolean success);
}
