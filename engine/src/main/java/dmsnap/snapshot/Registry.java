package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;
import dmsnap.target.DeviceResolver;
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
    public Registry() {}

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Map<DeviceResolver.Identity, List<Snapshot>> byOrigin = new HashMap<>();
    /** Per origin: origin writes hold it shared while they copy out and write; a handover exclusively. */
    private final Map<DeviceResolver.Identity, ReentrantReadWriteLock> originIo = new HashMap<>();

    /**
     * The instances of one COW on one origin, as the kernel's sharing scan sees them (spec 8.1),
     * and the origin's merging snapshot (a snapshot-merge instance on any COW), or null.
     */
    record Sharing(int count, Snapshot source, Snapshot destination, Snapshot merging) {}

    /** How a newly registered instance starts. */
    enum Role {
        /** No live instance on the COW: the store reads the COW. */
        FRESH,
        /** A live instance exists: this one takes its store at resume and reads nothing. */
        DESTINATION
    }

    private static final Comparator<Snapshot> LARGEST_CHUNK_FIRST =
            Comparator.comparingLong(Snapshot::sortChunkSectors).reversed();

    /**
     * Constructor-time validation and registration, atomically (spec 8.2): refuses a load while
     * two instances share the COW or one of them was never resumed; a snapshot-merge taking
     * over while the origin has a merging snapshot, or from a store that cannot merge; otherwise
     * registers {@code s} as a fresh instance or as the handover destination of the live one.
     * A fresh snapshot-merge on a transient store is refused too, which the kernel does not do
     * (spec 1.4: it would then merge with a store that has no merge operations).
     */
    Role register(Snapshot s) throws HandoverException {
        lock.writeLock().lock();
        try {
            Sharing sharing = scan(s);
            if (sharing.count() == 2 || sharing.destination() != null) {
                throw new HandoverException("Snapshot cow pairing for exception table handover failed");
            }
            if (s.isMerging()) {
                if (sharing.source() != null && sharing.merging() != null) {
                    throw new HandoverException("A snapshot is already merging.");
                }
                ExceptionStore store =
                        sharing.source() != null ? sharing.source().store() : s.store();
                if (!store.supportsMerge()) {
                    throw new HandoverException("Snapshot exception store does not support snapshot-merge.");
                }
            }
            List<Snapshot> list = byOrigin.computeIfAbsent(s.originIdentity(), k -> new ArrayList<>());
            list.add(s);
            list.sort(LARGEST_CHUNK_FIRST); // stable: a new one goes after others of its size
            return sharing.source() == null ? Role.FRESH : Role.DESTINATION;
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** The sharing scan for {@code x}: instances on x's origin with x's COW (x included if registered). */
    Sharing scan(Snapshot x) {
        lock.readLock().lock();
        try {
            int count = 0;
            Snapshot source = null;
            Snapshot destination = null;
            Snapshot merging = null;
            for (Snapshot s : byOrigin.getOrDefault(x.originIdentity(), List.of())) {
                if (s.isMerging()) {
                    merging = s;
                }
                if (s.cowIdentity().equals(x.cowIdentity())) {
                    count++;
                    if (s.isActive()) {
                        source = s;
                    } else {
                        destination = s;
                    }
                }
            }
            return new Sharing(count, source, destination, merging);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The lock origin writes to {@code origin} hold shared, and a handover exclusively. */
    ReentrantReadWriteLock originIoLock(DeviceResolver.Identity origin) {
        lock.writeLock().lock();
        try {
            return originIo.computeIfAbsent(origin, k -> new ReentrantReadWriteLock());
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

    void resort(DeviceResolver.Identity origin) {
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
    List<Snapshot> snapshotsOf(DeviceResolver.Identity origin) {
        lock.readLock().lock();
        try {
            List<Snapshot> list = byOrigin.get(origin);
            return list == null ? List.of() : List.copyOf(list);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The snapshot-merge instance registered on {@code origin} (the last one, as the kernel's scan), or null. */
    Snapshot mergingSnapshotOf(DeviceResolver.Identity origin) {
        Snapshot merging = null;
        for (Snapshot s : snapshotsOf(origin)) {
            if (s.isMerging()) {
                merging = s;
            }
        }
        return merging;
    }

    /** Every registered snapshot (for tests and metrics). */
    List<Snapshot> allSnapshots() {
        lock.readLock().lock();
        try {
            return byOrigin.values().stream().flatMap(List::stream).toList();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The smallest chunk size of the snapshots registered on {@code origin}, or 0 when none. */
    long minimumChunkSectors(DeviceResolver.Identity origin) {
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
