package dmsnap.snapshot;

import dmsnap.store.ExceptionTable;
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
                long run = walk.run(at, end);
                long sectors = Math.abs(run);
                if (!sink.accept(sectors, run > 0)) {
                    return;
                }
                at += sectors;
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
        /** Sectors per chunk: {@code 1 << shift} (a power of two; shifts, not divisions, per run). */
        private final int shift;

        private final HeldTable table;
        private final ExceptionTable.Cursor cursor;

        private Exceptions(long chunkSectors, HeldTable table) {
            this.shift = Long.numberOfTrailingZeros(chunkSectors);
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

        /** The first sector in {@code [from, to)} whose chunk has an exception, or {@code to}. */
        long next(long from, long to) {
            long chunk = cursor.next(from >>> shift, ((to - 1) >>> shift) + 1);
            return Math.min(to, Math.max(from, chunk << shift));
        }

        /** The end of the exceptions from {@code from} on, at most {@code to}: {@code from} when its chunk has none. */
        long end(long from, long to) {
            long chunk = cursor.end(from >>> shift, ((to - 1) >>> shift) + 1);
            return Math.min(to, Math.max(from, chunk << shift));
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

        /** The run from {@code sector} on, up to {@code end}: its sectors, negated when unchanged (no object per run). */
        long run(long sector, long end) {
            long at = base.end(sector, end);
            while (self != null) { // where either has exceptions: each one's, in turn, until neither goes on
                long after = self.end(at, end);
                if (after == at) {
                    break;
                }
                at = base.end(after, end);
                if (at == after) {
                    break;
                }
            }
            if (at > sector) {
                return at - sector;
            }
            long next = base.next(sector, end);
            if (self != null) {
                next = Math.min(next, self.next(sector, end));
            }
            return sector - next;
        }
    }
}
