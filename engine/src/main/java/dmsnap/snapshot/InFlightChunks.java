package dmsnap.snapshot;

import java.util.HashMap;
import java.util.Map;

/**
 * I/O in flight, counted per chunk, that a later step must let finish: the snapshot reads of
 * origin chunks a copy-out waits for before it releases the origin write (the kernel's
 * {@code tracked_chunk_hash}, {@code __check_for_conflicting_io}), and the merging device's
 * writes into the COW a merge step waits for (spec 9.2 step 7). Waiters park on this object's
 * monitor and are woken when a chunk's count drops to zero; nothing spins.
 *
 * <p>Locks: this object's monitor guards {@link #counts}. It is taken inside the snapshot's lock
 * (a chunk is tracked in the same hold as the lookup that decided to track it), never the other
 * way round, and no one waits here while holding the snapshot's lock.
 */
final class InFlightChunks {
    private final Map<Long, Integer> counts = new HashMap<>();

    synchronized void track(long chunk) {
        counts.merge(chunk, 1, Integer::sum);
    }

    synchronized void untrack(long chunk) {
        Integer left = counts.computeIfPresent(chunk, (k, n) -> n == 1 ? null : n - 1);
        if (left == null) {
            notifyAll();
        }
    }

    /** Parks until no I/O on {@code chunk} is in flight. */
    void awaitNone(long chunk) throws InterruptedException {
        awaitNoneIn(chunk, 1);
    }

    /**
     * {@link #awaitNoneIn} for a caller that cannot stop half way (completing exceptions); an
     * interrupt does not cut the wait short and is kept for the caller.
     */
    void awaitNoneUninterruptibly(long first, long count) {
        boolean interrupted = false;
        while (true) {
            try {
                awaitNoneIn(first, count);
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Parks until no I/O on a chunk of {@code [first, first + count)} is in flight. */
    synchronized void awaitNoneIn(long first, long count) throws InterruptedException {
        while (anyIn(first, count)) {
            wait();
        }
    }

    /** Looks up each chunk of a short range, walks the counts for a long one; caller holds the monitor. */
    private boolean anyIn(long first, long count) {
        if (counts.isEmpty()) {
            return false;
        }
        if (count <= counts.size()) {
            for (long c = first; c < first + count; c++) {
                if (counts.containsKey(c)) {
                    return true;
                }
            }
            return false;
        }
        return counts.keySet().stream().anyMatch(c -> c >= first && c < first + count);
    }
}
