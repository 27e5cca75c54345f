package dmsnap.snapshot;

import dmsnap.store.ExceptionTable;
import dmsnap.target.Change;
import dmsnap.target.ChangeSink;
import dmsnap.target.DeviceResolver;
import java.io.IOException;
import java.util.Set;
import java.util.TreeSet;

/**
 * Changed-block tracking from snapshots. dm-snapshot copies a chunk out to a snapshot on the
 * origin's first write to it after the snapshot was taken, so an older snapshot's exceptions
 * cover every chunk the origin changed since: a safe superset (a write to the older snapshot
 * itself adds chunks that did not change on the origin). A newer snapshot's view differs from
 * the older one only where the origin changed between them or where the newer one was written,
 * which is where either has an exception. Answered from the complete tables, which hold a
 * chunk before the write that changed it is replied to; the lookups take no lock a write waits
 * for.
 *
 * <p>A walk holds the tables it reads ({@link HeldTable}) from its start to its end. It finds
 * the baseline and takes hold of its table under the origin's I/O lock, shared as an origin
 * write takes it: a handover swaps tables under that lock exclusively, so a walk sees the
 * baseline either before the handover (and goes on reading the table the destination takes
 * over) or after it, never between. A baseline removed mid-walk leaves the walk its table,
 * freed when the walk ends.
 */
final class ChangeMap {
    private final Registry registry;
    private final DeviceResolver.Identity origin;
    /** The snapshot whose view is asked about; null for the origin's. */
    private final Snapshot self;

    ChangeMap(Registry registry, DeviceResolver.Identity origin, Snapshot self) {
        this.registry = registry;
        this.origin = origin;
        this.self = self;
    }

    /** Every valid, resumed, non-merging snapshot of the origin but this one, by device name. */
    Set<String> baselines() {
        Set<String> names = new TreeSet<>();
        var io = registry.originIoLock(origin).readLock(); // not in the middle of a handover
        io.lock();
        try {
            for (Snapshot s : registry.snapshotsOf(origin)) {
                if (usable(s)) {
                    names.add(s.deviceName());
                }
            }
        } finally {
            io.unlock();
        }
        return names;
    }

    private boolean usable(Snapshot s) {
        return s != self && s.isActive() && s.isValid() && !s.isMerging();
    }

    /** The runs from {@code sector} on, the baseline found once (see {@link dmsnap.target.Target#changedRuns}). */
    void runs(String baseline, long sector, long maxSectors, ChangeSink sink) throws IOException {
        Walk walk = walk(baseline);
        try {
            for (long at = sector, end = sector + maxSectors; at < end; ) {
                Change c = walk.run(at, end);
                if (!sink.accept(c.sectors(), c.changed())) {
                    return;
                }
                at += c.sectors();
            }
        } finally {
            walk.release();
        }
    }

    /** The walk's tables, held: the baseline's and this view's own. */
    private Walk walk(String baseline) throws IOException {
        var io = registry.originIoLock(origin).readLock();
        io.lock();
        try {
            for (Snapshot s : registry.snapshotsOf(origin)) {
                if (usable(s) && s.deviceName().equals(baseline)) {
                    Exceptions base = Exceptions.hold(s);
                    if (base == null) {
                        break; // destroyed since the list was read
                    }
                    Exceptions mine = self == null ? null : Exceptions.hold(self);
                    if (self != null && mine == null) {
                        base.release();
                        throw new IOException(self.deviceName() + " is gone");
                    }
                    return new Walk(base, mine);
                }
            }
        } finally {
            io.unlock();
        }
        throw new IOException("no valid snapshot " + baseline + " of this origin to compare with");
    }

    /** One snapshot's completed exceptions in sectors, read through a cursor: for one walk, which holds the table. */
    private static final class Exceptions {
        private final long chunkSectors;
        private final HeldTable table;
        private final ExceptionTable.Cursor cursor;

        private Exceptions(long chunkSectors, HeldTable table) {
            this.chunkSectors = chunkSectors;
            this.table = table;
            this.cursor = table.table().cursor();
        }

        /** {@code s}'s table, held; null when {@code s} is destroyed. */
        static Exceptions hold(Snapshot s) {
            HeldTable t = s.holdCompleteTable();
            return t == null ? null : new Exceptions(s.chunkSectors(), t);
        }

        void release() {
            table.release();
        }

        boolean has(long sector) {
            return cursor.has(sector / chunkSectors);
        }

        /** The first sector in {@code [from, to)} whose chunk has an exception, or {@code to}. */
        long next(long from, long to) {
            long chunk = cursor.next(from / chunkSectors, (to - 1) / chunkSectors + 1);
            return Math.min(to, Math.max(from, chunk * chunkSectors));
        }

        /** The end of the exceptions from {@code from} on (its chunk has one), at most {@code to}. */
        long end(long from, long to) {
            return Math.min(to, cursor.end(from / chunkSectors, (to - 1) / chunkSectors + 1) * chunkSectors);
        }
    }

    /** The baseline's exceptions and, for a snapshot's view, its own: changed where either has one. */
    private record Walk(Exceptions base, Exceptions self) {
        void release() {
            base.release();
            if (self != null) {
                self.release();
            }
        }

        Change run(long sector, long end) {
            long at = sector;
            while (at < end) {
                boolean inBase = base.has(at);
                boolean inSelf = self != null && self.has(at);
                if (!inBase && !inSelf) {
                    break;
                }
                at = Math.max(inBase ? base.end(at, end) : at, inSelf ? self.end(at, end) : at);
            }
            if (at > sector) {
                return new Change(at - sector, true);
            }
            long next = base.next(sector, end);
            if (self != null) {
                next = Math.min(next, self.next(sector, end));
            }
            return new Change(next - sector, false);
        }
    }
}
