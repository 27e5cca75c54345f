package dmsnap.ffm;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Counts calls in progress on something that can be closed (a descriptor, a device, a copier's
 * buffers), so that {@link #close()} waits for them and later calls fail cleanly instead of
 * touching a released descriptor or arena. The call path is one CAS and one decrement; the closer
 * parks on a latch that the last call to return opens, it never spins.
 *
 * <p>The one drain mechanism of the project below the engine: {@link NativeFile}, the store's
 * devices and its chunk copier use it (the bindings cannot depend on the store, hence here).
 */
public final class InFlight {
    /** Added to the count by close(): negative from then on, {@code CLOSED} exactly once drained. */
    private static final int CLOSED = Integer.MIN_VALUE;

    private final AtomicInteger users = new AtomicInteger();
    private final CountDownLatch drained = new CountDownLatch(1);
    private final String name;

    /** @param name what the "is closed" message names */
    public InFlight(String name) {
        this.name = name;
    }

    /** Starts a call; fails with "{name} is closed" once {@link #close()} has begun. */
    public void acquire() {
        if (!tryAcquire()) {
            throw new IllegalStateException(name + " is closed");
        }
    }

    /** Starts a call unless {@link #close()} has begun; true when the caller must {@link #release()}. */
    public boolean tryAcquire() {
        int current;
        do {
            current = users.get();
            if (current < 0) {
                return false;
            }
        } while (!users.compareAndSet(current, current + 1));
        return true;
    }

    /** Ends a call started by {@link #acquire()} or a successful {@link #tryAcquire()}. */
    public void release() {
        if (users.decrementAndGet() == CLOSED) {
            drained.countDown(); // the last call after close() began: wake the closer
        }
    }

    /**
     * Refuses new calls, then parks until every call in progress has returned. Not interruptible
     * (a close must not leave a descriptor half-released); an interrupt is kept for the caller.
     *
     * @return true for the one caller that closed it (it returns once no call is in progress),
     *         false at once for later callers
     */
    public boolean close() {
        int current;
        do {
            current = users.get();
            if (current < 0) {
                return false;
            }
        } while (!users.compareAndSet(current, current + CLOSED));
        if (current == 0) {
            return true; // nothing in flight, so no release will open the latch
        }
        boolean interrupted = false;
        while (true) {
            try {
                drained.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return true;
    }

    public boolean isOpen() {
        return users.get() >= 0;
    }

    /** Calls in progress now (for tests and diagnostics). */
    public int inProgress() {
        int n = users.get();
        return n >= 0 ? n : n - CLOSED;
    }
}
