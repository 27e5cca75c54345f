package dmsnap.store;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * Puts commits back into allocation order, as the kernel's {@code complete_exception} does with
 * its out-of-order tree: an item whose sequence number is not the next one is parked until
 * every earlier one has arrived. Not thread-safe: the owning store calls it under its lock.
 *
 * @param <T> what travels with a sequence number
 */
public final class InOrderCommits<T> {
    private final TreeMap<Long, T> parked = new TreeMap<>();
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
        if (sequence < next || parked.containsKey(sequence)) {
            throw new IllegalStateException("sequence " + sequence + " was committed twice");
        }
        parked.put(sequence, item);
        List<T> ready = new ArrayList<>(1);
        while (!parked.isEmpty() && parked.firstKey() == next) {
            ready.add(parked.pollFirstEntry().getValue());
            next++;
        }
        return ready;
    }
}
