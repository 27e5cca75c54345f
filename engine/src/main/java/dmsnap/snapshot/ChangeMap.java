package dmsnap.snapshot;

import dmsnap.target.Change;
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

    Change changedSince(String baseline, long sector, long maxSectors) throws IOException {
        Snapshot base = null;
        for (Snapshot s : registry.snapshotsOf(origin)) {
            if (usable(s) && s.deviceName().equals(baseline)) {
                base = s;
            }
        }
        if (base == null) {
            throw new IOException("no valid snapshot " + baseline + " of this origin to compare with");
        }
        long end = sector + maxSectors;
        if (changed(base, sector)) {
            long at = sector;
            while (at < end && changed(base, at)) {
                at = nextChunk(base, at);
            }
            return new Change(Math.min(at, end) - sector, true);
        }
        long next = base.nextExceptionSector(sector, end);
        if (self != null) {
            next = Math.min(next, self.nextExceptionSector(sector, end));
        }
        return new Change(next - sector, false);
    }

    private boolean changed(Snapshot base, long sector) {
        return base.hasException(sector) || self != null && self.hasException(sector);
    }

    /** The next chunk boundary after {@code sector} of either snapshot. */
    private long nextChunk(Snapshot base, long sector) {
        long next = base.chunkEndSector(sector);
        return self == null ? next : Math.min(next, self.chunkEndSector(sector));
    }
}
