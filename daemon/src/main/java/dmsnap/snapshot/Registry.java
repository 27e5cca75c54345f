package dmsnap.snapshot;

import dmsnap.device.BackingDevices;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Snapshots by origin device identity ({@code _origins} in dm-snap.c): every constructed
 * snapshot registers here and stays until destroyed, in a list sorted by chunk size, largest
 * first (ties in registration order). Origin writes read it under the read lock; registration,
 * removal and re-sorting take the write lock.
 */
public final class Registry {
    public Registry() {
    }

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Map<BackingDevices.Identity, List<Snapshot>> byOrigin = new HashMap<>();

    private static final Comparator<Snapshot> LARGEST_CHUNK_FIRST =
            Comparator.comparingLong(Snapshot::sortChunkSectors).reversed();

    void register(Snapshot s) {
        lock.writeLock().lock();
        try {
            List<Snapshot> list = byOrigin.computeIfAbsent(s.originIdentity(), k -> new ArrayList<>());
            list.add(s);
            list.sort(LARGEST_CHUNK_FIRST); // stable: a new one goes after others of its size
        } finally {
            lock.writeLock().unlock();
        }
    }

    void unregister(Snapshot s) {
        lock.writeLock().lock();
        try {
            List<Snapshot> list = byOrigin.get(s.originIdentity());
            if (list != null) {
                list.remove(s);
                if (list.isEmpty()) {
                    byOrigin.remove(s.originIdentity());
                }
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    void resort(BackingDevices.Identity origin) {
        lock.writeLock().lock();
        try {
            List<Snapshot> list = byOrigin.get(origin);
            if (list != null) {
                list.sort(LARGEST_CHUNK_FIRST);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** A copy of the snapshots of {@code origin}, in list order. */
    List<Snapshot> snapshotsOf(BackingDevices.Identity origin) {
        lock.readLock().lock();
        try {
            List<Snapshot> list = byOrigin.get(origin);
            return list == null ? List.of() : List.copyOf(list);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The smallest chunk size of the snapshots registered on {@code origin}, or 0 when none. */
    long minimumChunkSectors(BackingDevices.Identity origin) {
        long min = 0;
        for (Snapshot s : snapshotsOf(origin)) {
            long c = s.chunkSectors();
            if (c > 0 && (min == 0 || c < min)) {
                min = c;
            }
        }
        return min;
    }
}
