package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * When a snapshot's deferred exceptions are committed (the cache modes {@code none} and
 * {@code writeback}; nothing is deferred in {@code directsync}): a snapshot write made visible
 * before its exception is durable waits in the store ({@link ExceptionStore#commitDeferred})
 * until a FLUSH or FUA write ({@link #flush}), suspend, remove or merge start ({@link
 * #commitAll}), an origin write that needs the chunk ({@link #hurry}), the store's limit (full
 * areas wait too: see {@code PersistentExceptionStore.deferredLimit}), or the commit interval
 * ({@link CommitTimer}) asks for a round. The kernel has no such part: it commits every
 * exception at once (spec 2.8).
 *
 * <p>Always works on the snapshot's store of the moment: a handover swaps it.
 */
final class DeferredCommits {
    private static final Logger log = LoggerFactory.getLogger(Snapshot.class);

    private final SnapshotState state;
    private final CacheMode mode;
    private final CommitTimer timer;
    /** The commit interval's task is scheduled and has not run yet. */
    private final AtomicBoolean armed = new AtomicBoolean();
    /** When this snapshot last asked for its deferred exceptions to be written (System.nanoTime). */
    private volatile long askedNanos = Long.MIN_VALUE;

    DeferredCommits(SnapshotState state, CacheMode mode, CommitTimer timer) {
        this.state = state;
        this.mode = mode;
        this.timer = timer;
    }

    /** Whether snapshot writes are acknowledged before their exceptions are committed. */
    boolean defers() {
        return mode.defersCommits();
    }

    CacheMode mode() {
        return mode;
    }

    /** An exception was committed deferred: the commit interval runs from now unless it runs already. */
    void deferred() {
        if (armed.compareAndSet(false, true)) {
            try {
                timer.schedule(this::intervalPassed);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                armed.set(false); // the daemon is stopping: its suspend of every device commits
            }
        }
    }

    /** The commit interval passed: whatever is deferred now is written as soon as it can be. */
    private void intervalPassed() {
        armed.set(false); // a remap deferred from now on arms the next interval
        ExceptionStore store = state.store();
        askedNanos = System.nanoTime();
        try {
            store.commitThrough(store.nextSequence() - 1);
        } catch (RuntimeException e) {
            log.error("{}: committing deferred exceptions failed", state.deviceName(), e);
        }
    }

    /** An origin write needs remap {@code sequence} durable: write it as soon as it can be. */
    void hurry(long sequence) {
        askedNanos = System.nanoTime();
        state.store().commitThrough(sequence);
    }

    /**
     * NBD's FLUSH (and a FUA write's end): every exception made before, and every COW write
     * completed before, is durable on return.
     *
     * @throws IOException the commit or the flush failed (a failed commit invalidated the snapshot)
     */
    void flush() throws IOException, InterruptedException {
        askedNanos = System.nanoTime();
        state.store().sync(true);
    }

    /**
     * Suspend, remove, merge start: every exception made so far is committed before this
     * returns. Not interrupted (a half-done suspend is not a state); a failure has invalidated
     * the snapshot through its callbacks and is only logged here.
     */
    void commitAll() {
        if (!defers() || !state.isValid()) {
            return; // an invalid snapshot's commits have all failed, or will
        }
        askedNanos = System.nanoTime();
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    state.store().sync(false);
                    return;
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (IOException e) {
                    log.warn("{}: {}", state.deviceName(), e.getMessage());
                    return;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * When a deferred commit requested at {@code deferredNanos} became due: then, or when this
     * snapshot last asked for its deferred exceptions, whichever is later (the commit latency
     * metric measures the commit, not the wait for a FLUSH).
     */
    long dueNanos(long deferredNanos) {
        long asked = askedNanos;
        return asked - deferredNanos > 0 ? asked : deferredNanos;
    }
}
