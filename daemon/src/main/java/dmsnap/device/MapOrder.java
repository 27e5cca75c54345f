package dmsnap.device;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * The order in which the pieces of a split request are mapped. dm core maps a bio's clones one
 * after the other and lets them complete in any order, so what a target decides while mapping
 * (a snapshot allocates its COW chunk, an origin write makes its pending exceptions) happens in
 * sector order, while the copies, writes and commits that follow overlap.
 *
 * <p>{@link #runInOrder} starts every piece on a virtual thread at once; piece i+1 begins when
 * piece i's target calls {@link #mapped()} (or when piece i ends, for targets that never call
 * it). The turn passes from thread to thread directly, so all pieces of a 1 MiB request are
 * mapped within microseconds of each other and their exceptions share one commit.
 */
public final class MapOrder {
    private static final ThreadLocal<Runnable> NEXT = new ThreadLocal<>();
    private static final ThreadLocal<Request> REQUEST = new ThreadLocal<>();

    private MapOrder() {
    }

    /** A target has made its in-order decisions for the request on this thread: the next piece may start. */
    public static void mapped() {
        Runnable next = NEXT.get();
        if (next != null) {
            NEXT.remove();
            next.run();
        }
    }

    /**
     * While the pieces of this thread's split request are still being mapped (this is not the
     * last one), runs {@code begin} once per {@code key} for the request and {@code end} when
     * the last piece has been mapped; otherwise does nothing. A snapshot uses it to hold its
     * store's commits until every piece has allocated its exception.
     */
    public static void whileMapping(Object key, Runnable begin, Runnable end) {
        Request r = REQUEST.get();
        if (r != null) {
            r.whileMapping(key, begin, end);
        }
    }

    /** A piece's work. */
    @FunctionalInterface
    interface Piece {
        void run() throws Exception;
    }

    /** Runs {@code pieces} as described above and waits for all of them; the first failure is returned. */
    static Throwable runInOrder(List<? extends Piece> pieces) throws InterruptedException {
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>(pieces.size());
        Request request = new Request();
        Turn turn = new Turn(threads, request);
        for (int i = 0; i < pieces.size(); i++) {
            int index = i;
            Piece piece = pieces.get(i);
            threads.add(Thread.ofVirtual().unstarted(() -> {
                turn.await(index);
                NEXT.set(() -> turn.pass(index));
                if (index + 1 < pieces.size()) {
                    REQUEST.set(request);
                }
                try {
                    piece.run();
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    mapped();
                }
            }));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join(); // a piece in flight must finish before the request (and its buffer) is done
        }
        return failure.get();
    }

    /** What one split request's pieces hold until all of them are mapped. */
    private static final class Request {
        private final java.util.Map<Object, Runnable> ends = new java.util.IdentityHashMap<>();

        synchronized void whileMapping(Object key, Runnable begin, Runnable end) {
            if (!ends.containsKey(key)) {
                begin.run();
                ends.put(key, end);
            }
        }

        void allMapped() {
            List<Runnable> todo;
            synchronized (this) {
                todo = List.copyOf(ends.values());
                ends.clear();
            }
            todo.forEach(Runnable::run);
        }
    }

    /** Whose turn it is to map, handed from one piece's thread to the next. */
    private static final class Turn {
        private final List<Thread> threads;
        private final Request request;
        private volatile int current;

        Turn(List<Thread> threads, Request request) {
            this.threads = threads;
            this.request = request;
        }

        void await(int index) {
            while (current != index) {
                LockSupport.park(this);
            }
        }

        void pass(int index) {
            REQUEST.remove();
            current = index + 1;
            if (index + 1 < threads.size()) {
                LockSupport.unpark(threads.get(index + 1));
            } else {
                request.allMapped();
            }
        }
    }
}
