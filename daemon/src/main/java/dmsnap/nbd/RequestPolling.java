package dmsnap.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Lock;

/**
 * Polling for a queue-depth-1 client's next request, as QEMU's event loop polls before it sleeps
 * ({@code poll-max-ns}): after a request served on its connection's thread, the reader asks the
 * socket without blocking for up to {@link #windowNanos} before it blocks in a read. A client at
 * queue depth 1 sends its next request a few microseconds after it has its reply; a reader asleep
 * by then must be woken on a CPU that went idle, which on a VM costs tens of microseconds (an IPI
 * and a halt exit) on every request, more than the request's own work. Polling keeps that CPU
 * running; the polling thread spends the window's CPU only while it waits.
 *
 * <p>Polling pays only where the CPU would otherwise go idle, so it is bounded four ways: only a
 * connection whose last wait was no longer than the window polls (an idle or slow client blocks at
 * once, after at most one window lost); a poll ends as soon as another thread wants its CPU (a
 * yield that ran something else, see {@link NbdChannel#pollMessage}), and that connection then
 * skips its next {@link #BUSY_SKIPS} polls; at most {@code maxPollers} connections poll at a time
 * (one CPU is left to the clients and the I/O threads); and a window of 0 turns polling off.
 */
final class RequestPolling {
    /** A qd1 client on a 2-CPU VM answers in 20-30 µs; 100 µs catches it, an idle client costs one window. */
    static final long DEFAULT_WINDOW_NANOS = 100_000;

    /**
     * A yield longer than this gave the CPU to a thread that wanted it for a while. A yield with
     * nothing else to run takes about a microsecond; one that runs a thread that soon sleeps again
     * (the client's own, on this CPU) a few more, which polling does not mind; a CPU-bound thread
     * runs for a scheduler slice (0.75 ms and more). Measured on the 2-CPU VM of bench/RESULTS.md,
     * idle: 1 yield in 11,000 took over 20 µs (interrupts, the host), 1 in 300,000 over 100 µs.
     */
    static final long BUSY_YIELD_NANOS = 250_000;

    /** Polls a connection skips after its CPU was wanted: the machine is busy, try again later. */
    static final int BUSY_SKIPS = 1024;

    private final long windowNanos;
    private final long busyNanos;
    private final int maxPollers;
    private final Semaphore pollers;
    /** Requests whose first bytes a poll found (for tests). */
    private final LongAdder caught = new LongAdder();

    /**
     * @param windowNanos how long a poll lasts at most; 0: never poll
     * @param busyNanos   a yield longer than this ran another thread (see {@link #BUSY_YIELD_NANOS})
     * @param maxPollers  how many connections may poll at once
     */
    RequestPolling(long windowNanos, long busyNanos, int maxPollers) {
        if (windowNanos < 0 || busyNanos < 0) {
            throw new IllegalArgumentException("a poll window cannot be negative: " + windowNanos + ", " + busyNanos);
        }
        this.windowNanos = windowNanos;
        this.busyNanos = busyNanos;
        this.maxPollers = Math.max(1, maxPollers);
        this.pollers = new Semaphore(this.maxPollers);
    }

    /** Polling on a machine with {@code cpus} CPUs: one CPU is never polled on (so none on one CPU). */
    static RequestPolling forCpus(long windowNanos, long busyNanos, int cpus) {
        return new RequestPolling(cpus < 2 ? 0 : windowNanos, busyNanos, cpus - 1);
    }

    long windowNanos() {
        return windowNanos;
    }

    /** Requests whose first bytes a poll found (for tests). */
    long caught() {
        return caught.sum();
    }

    /** Connections polling now (for tests). */
    int polling() {
        return maxPollers - pollers.availablePermits();
    }

    /** One connection's polling: its reader thread's alone. */
    Reader reader() {
        return new Reader();
    }

    final class Reader {
        /** How long the last timed wait for a request took. */
        private long lastWaitNanos;
        /** Polls still to skip since the CPU was last wanted. */
        private int skips;

        private Reader() {}

        /** Whether the next wait should poll: the last one was within the window, the CPU not wanted lately. */
        boolean shouldPoll() {
            if (windowNanos == 0 || lastWaitNanos > windowNanos) {
                return false;
            }
            if (skips > 0) {
                skips--;
                return false;
            }
            return true;
        }

        /** A timed wait for a request took {@code nanos}. */
        void waited(long nanos) {
            lastWaitNanos = nanos;
        }

        /**
         * Polls {@code channel} for the next request into {@code header}, holding {@code sending}
         * so that no reply is written while the socket is non-blocking; gives up at once when
         * {@code maxPollers} poll already or a reply is being sent.
         */
        void poll(NbdChannel channel, ByteBuffer header, Lock sending) throws IOException {
            if (!pollers.tryAcquire()) {
                return;
            }
            NbdChannel.Poll outcome = NbdChannel.Poll.NOTHING;
            try {
                if (sending.tryLock()) {
                    try {
                        outcome = channel.pollMessage(header, windowNanos, busyNanos);
                    } finally {
                        sending.unlock();
                    }
                }
            } finally {
                pollers.release();
            }
            polled(outcome);
        }

        /** What a poll found (separate for tests). */
        void polled(NbdChannel.Poll outcome) {
            switch (outcome) {
                case ARRIVED -> caught.increment();
                case CPU_WANTED -> skips = BUSY_SKIPS;
                case NOTHING -> {}
            }
        }
    }
}
