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
        for (Snapshot s : registry.snapshotsOf(origin)) {
            if (usable(s)) {
                names.add(s.deviceName());
            }
        }
        return names;
    }

    private boolean usable(Snapshot s) {
        return s != self && s.isActive() && s.isValid() && !s.isMerging();
    }

    /** The runs from {@code sector} on, the baseline found once (see {@link dmsnap.target.Target#changedRuns}). */
    void runs(String baseline, long sector, long maxSectors, ChangeSink sink) throws IOException {
        Walk walk = walk(baseline);
        for (long at = sector, end = sector + maxSectors; at < end; ) {
            long run = walk.run(at, end);
            long sectors = Math.abs(run);
            if (!sink.accept(sectors, run > 0)) {
                return;
            }
            at += sectors;
        }
    }

    private Walk walk(String baseline) throws IOException {
        for (Snapshot s : registry.snapshotsOf(origin)) {
            if (usable(s) && s.deviceName().equals(baseline)) {
                return new Walk(new Exceptions(s), self == null ? null : new Exceptions(self));
            }
        }
        throw new IOException("no valid snapshot " + baseline + " of this origin to compare with");
    }

    /** One snapshot's completed exceptions in sectors, read through a cursor: for one walk. */
    private static final class Exceptions {
        /** Sectors per chunk: {@code 1 << shift} (a power of two; shifts, not divisions, per run). */
        private final int shift;

        private final ExceptionTable.Cursor cursor;

        Exceptions(Snapshot s) {
            shift = Long.numberOfTrailingZeros(s.chunkSectors());
            cursor = s.completeTable().cursor();
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
