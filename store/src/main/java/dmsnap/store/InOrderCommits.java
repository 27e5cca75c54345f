package dmsnap.store;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Puts commits back into allocation order, as the kernel's {@code complete_exception} does with
 * its out-of-order tree: an item whose sequence number is not the next one is parked until
 * every earlier one has arrived. Items arrive one by one or as runs of consecutive sequence
 * numbers (one write's new exceptions), parked as one entry: a 1 MiB write of 4 KiB chunks is
 * one tree operation, not 256. Not thread-safe: the owning store calls it under its lock.
 *
 * @param <T> what travels with a sequence number
 */
public final class InOrderCommits<T> {
    /** Parked runs by their first sequence number; no two overlap. */
    private final TreeMap<Long, List<T>> parked = new TreeMap<>();

    private long next;

    /** The sequence number the next item in order has: every one before it has arrived. */
    public long nextExpected() {
        return next;
    }

    /**
     * Accepts the item with {@code sequence}; returns the items (possibly none) that are now in
     * order, oldest first.
     */
    public List<T> arrive(long sequence, T item) {
        return arrive(sequence, List.of(item));
    }

    /**
     * Accepts {@code run}, the items with sequence numbers {@code first}, {@code first + 1}, ...;
     * returns the items (possibly none) that are now in order, oldest first.
     */
    public List<T> arrive(long first, List<T> run) {
        if (run.isEmpty()) {
            return List.of();
        }
        long last = first + run.size() - 1;
        Map.Entry<Long, List<T>> below = parked.floorEntry(last);
        if (first < next || below != null && below.getKey() + below.getValue().size() > first) {
            throw new IllegalStateException(
                    "sequence " + first + (run.size() > 1 ? ".." + last : "") + " was committed twice");
        }
        if (first != next) {
            parked.put(first, run);
            return List.of();
        }
        next = last + 1;
        if (parked.isEmpty() || parked.firstKey() != next) {
            return run; // the common case: in order, nothing parked behind it
        }
        List<T> ready = new ArrayList<>(run);
        while (!parked.isEmpty() && parked.firstKey() == next) {
            List<T> more = parked.pollFirstEntry().getValue();
            ready.addAll(more);
            next += more.size();
        }
        return ready;
    }
}
