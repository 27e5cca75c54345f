package dmsnap.nbd;

import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;

/**
 * Polling for a queue-depth-1 client's next request, as QEMU's event loop polls before it sleeps
 * ({@code poll-max-ns}): after a request served on its connection's thread, the reader asks the
 * socket without blocking for up to {@link #windowNanos} before it blocks in a read. A client at
 * queue depth 1 sends its next request a few microseconds after it has its reply; a reader asleep
 * by then must be woken on a CPU that went idle, which on a VM costs tens of microseconds (an IPI
 * and a halt exit) on every request, more than the request's own work. Polling keeps that CPU
 * running; the polling thread spends the window's CPU only while it waits.
 *
 * <p>Bounded three ways: only a connection whose last wait was no longer than the window polls
 * (an idle or slow client blocks at once, after at most one window lost); at most {@code
 * maxPollers} connections poll at a time (one CPU is left to the clients and the I/O threads);
 * and a window of 0 turns polling off.
 */
final class RequestPolling {
    /** A qd1 client on a 2-CPU VM answers in 20-30 µs; 100 µs catches it, an idle client costs one window. */
    static final long DEFAULT_WINDOW_NANOS = 100_000;

    private final long windowNanos;
    private final int maxPollers;
    private final Semaphore pollers;
    /** Requests whose first bytes a poll found (for tests). */
    private final LongAdder caught = new LongAdder();

    RequestPolling(long windowNanos, int maxPollers) {
        if (windowNanos < 0) {
            throw new IllegalArgumentException("a poll window cannot be negative: " + windowNanos);
        }
        this.windowNanos = windowNanos;
        this.maxPollers = Math.max(1, maxPollers);
        this.pollers = new Semaphore(this.maxPollers);
    }

    /** Polling on a machine with {@code cpus} CPUs: one CPU is never polled on (so none on one CPU). */
    static RequestPolling forCpus(long windowNanos, int cpus) {
        return cpus < 2 ? new RequestPolling(0, 1) : new RequestPolling(windowNanos, cpus - 1);
    }

    long windowNanos() {
        return windowNanos;
    }

    /** Whether the next wait should poll, given how long the last one took. */
    boolean worthPolling(long lastWaitNanos) {
        return windowNanos > 0 && lastWaitNanos <= windowNanos;
    }

    /** A poller's place, or false when {@code maxPollers} poll already (then the reader blocks at once). */
    boolean tryStart() {
        return pollers.tryAcquire();
    }

    /** Gives the place back; {@code found}: the poll found the next request. */
    void end(boolean found) {
        if (found) {
            caught.increment();
        }
        pollers.release();
    }

    long caught() {
        return caught.sum();
    }

    /** Connections polling now (for tests). */
    int polling() {
        return maxPollers - pollers.availablePermits();
    }
}
