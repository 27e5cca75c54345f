package dmsnap.snapshot;

import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionTable;
import dmsnap.store.StoreUsage;
import dmsnap.target.SnapshotStatus;
import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A snapshot's state and its handover (dm-snap.c's {@code valid}, {@code snapshot_overflowed},
 * {@code active}, {@code merge_failed}, {@code __handover_exceptions}, {@code __invalidate_snapshot}):
 * the exception store and complete table, which a handover swaps, and the flags status shows.
 *
 * <p>Locks: this object's monitor is the snapshot's lock. It guards the flag transitions here,
 * the pending exceptions ({@link PendingExceptions}) and the merge steps ({@link MergeSteps}), and
 * lookups in the complete table made together with them; no I/O happens while holding it and no
 * one waits under it. Taken after the registry's and origin's locks, before an
 * {@link InFlightChunks}' monitor.
 */
final class SnapshotState {
    /** Snapshot's logger: the lines a snapshot logs keep one logger name whichever part logs them. */
    private static final Logger log = LoggerFactory.getLogger(Snapshot.class);

    private final String deviceName;
    private final Runnable event;
    private final CommitObserver commits;
    /** "PO" in this instance's own table: a store handed over to it takes this flag. */
    private final boolean tableOverflow;
    /** Swapped by a handover, under the origin's I/O lock with this device suspended. */
    private volatile ExceptionStore store;

    /** Swapped by a handover, as the store; held by change-map walks too ({@link HeldTable}). */
    private volatile HeldTable complete;

    private volatile boolean valid = true;
    private volatile boolean overflowed;
    private volatile boolean active;
    /** In memory only, never cleared for this instance, not handed over (spec 9.2). */
    private volatile boolean mergeFailed;

    SnapshotState(String deviceName, ExceptionStore store, Runnable event, CommitObserver commits) {
        this.deviceName = deviceName;
        this.store = store;
        this.event = event;
        this.commits = commits;
        this.tableOverflow = store.overflowSupported();
        this.complete = new HeldTable(new ExceptionTable());
    }

    String deviceName() {
        return deviceName;
    }

    CommitObserver commits() {
        return commits;
    }

    ExceptionStore store() {
        return store;
    }

    ExceptionTable complete() {
        return complete.table();
    }

    /**
     * The complete table for a change-map walk, held until the walk releases it; null when this
     * instance is destroyed. A walk finds the instance and holds its table under the origin's I/O
     * lock (shared), so that no handover swaps the table in between.
     */
    HeldTable holdComplete() {
        HeldTable t = complete;
        return t.hold() ? t : null;
    }

    /** This instance is destroyed: it lets go of its complete table (freed once no walk holds it). */
    void releaseComplete() {
        complete.releaseOwner();
    }

    boolean isValid() {
        return valid;
    }

    boolean isOverflowed() {
        return overflowed;
    }

    boolean isActive() {
        return active;
    }

    void markActive() {
        active = true;
    }

    boolean isMergeFailed() {
        return mergeFailed;
    }

    void markMergeFailed() {
        mergeFailed = true;
    }

    /**
     * The handover (spec 8.5), called on the destination: it takes the source's store and
     * complete table (the source gets this one's unused ones), the valid and overflow flags;
     * the store's overflow flag comes from this table; the source becomes invalid. The caller
     * holds the origin's I/O lock exclusively and the source's device is suspended, so no copy
     * is in flight on either side.
     */
    void takeOver(SnapshotState source) {
        ExceptionStore myStore = store;
        HeldTable myTable = complete;
        store = source.store;
        complete = source.complete;
        source.store = myStore;
        source.complete = myTable;
        store.setOverflowSupported(tableOverflow);
        valid = source.valid;
        overflowed = source.overflowed;
        source.valid = false;
        log.info(
                "{}: took over the exception store of {} ({} exceptions)",
                deviceName,
                source.deviceName,
                complete.table().size());
    }

    /** A destination gives back the store it was built with for one of chunk size 0 (spec 8.2, step 6). */
    void replaceUnusedStore(ExceptionStore unsized) {
        store = unsized;
    }

    /** The source went away before the handover: this destination will be invalid. */
    void cancelHandover() {
        valid = false;
        log.warn("{}: Cancelling snapshot handover.", deviceName);
    }

    /** "Snapshot is marked invalid." at load: the COW says so; nothing is written. */
    void markLoadedInvalid() {
        valid = false;
    }

    /**
     * Invalidates once: status Invalid, later I/O errors, origin writes skip it, the persistent
     * header says valid=0, and the device counts an event. The one ERROR line has the kernel's
     * phrase for {@code cause}, then {@code reason} (the device and what failed), when known.
     */
    void invalidate(InvalidationCause cause, String reason) {
        synchronized (this) {
            if (!valid) {
                return;
            }
            valid = false;
        }
        if (reason == null) {
            log.error("{}: Invalidating snapshot: {}", deviceName, cause.kernelPhrase());
        } else {
            log.error("{}: Invalidating snapshot: {} {}", deviceName, cause.kernelPhrase(), reason);
        }
        store.invalidate();
        commits.invalidated(deviceName, cause);
        event.run();
    }

    /** A full COW with PO: overflowed from now on, logged once. */
    void overflow() {
        boolean first;
        synchronized (this) {
            first = !overflowed;
            overflowed = true;
        }
        if (first) {
            log.error("{}: Snapshot overflowed: Unable to allocate exception.", deviceName);
        }
    }

    /** Spec 6.1: Invalid, then Merge failed, then Overflow, else the store's usage. */
    SnapshotStatus status() throws IOException {
        if (!valid) {
            return new SnapshotStatus.Invalid();
        }
        if (mergeFailed) {
            return new SnapshotStatus.MergeFailed();
        }
        if (overflowed) {
            return new SnapshotStatus.Overflow();
        }
        StoreUsage usage = store.usage();
        return new SnapshotStatus.Usage(usage.allocatedSectors(), usage.totalSectors(), usage.metadataSectors());
    }
}
