package dmsnap.store.device;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Counts calls in progress on a device so that {@code close()} waits for them and later calls
 * fail cleanly instead of touching a released arena or descriptor.
 */
final class InFlight {
    private static final int CLOSED = Integer.MIN_VALUE;
    private final AtomicInteger users = new AtomicInteger();
    private final String name;

    InFlight(String name) {
        this.name = name;
    }

    void acquire() {
        int current;
        do {
            current = users.get();
            if (current < 0) {
                throw new IllegalStateException(name + " is closed");
            }
        } while (!users.compareAndSet(current, current + 1));
    }

    void release() {
        users.decrementAndGet();
    }

    /** @return true for the one caller that closed it; it returns once no call is in progress */
    boolean close() {
        int current;
        do {
            current = users.get();
            if (current < 0) {
                return false;
            }
        } while (!users.compareAndSet(current, current + CLOSED));
        while (users.get() != CLOSED) {
            Thread.onSpinWait();
        }
        return true;
    }

    boolean isOpen() {
        return users.get() >= 0;
    }
}
