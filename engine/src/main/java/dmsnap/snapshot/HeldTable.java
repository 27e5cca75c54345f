package dmsnap.snapshot;

import dmsnap.store.ExceptionTable;

/**
 * A complete exception table and who holds it: the snapshot instance that owns it (a handover
 * moves it, with the store, to the destination) and the change-map walks reading it ({@link
 * ChangeMap}). A walk may outlive the owner, whose device can be removed mid-walk: the table's
 * memory is freed when the last holder lets go, so that the walk ends with the answer as of its
 * start instead of reading freed memory.
 *
 * <p>Locks: this object's monitor guards {@link #owned} and {@link #walks}; nothing else is done
 * under it (the table is freed after it is released).
 */
final class HeldTable {
    private final ExceptionTable table;
    private boolean owned = true;
    private int walks;

    HeldTable(ExceptionTable table) {
        this.table = table;
    }

    ExceptionTable table() {
        return table;
    }

    /** A walk takes hold; false when the owner has let go already (its snapshot is gone). */
    synchronized boolean hold() {
        if (!owned) {
            return false;
        }
        walks++;
        return true;
    }

    /** A walk lets go; the last holder frees the table. */
    void release() {
        boolean last;
        synchronized (this) {
            if (walks == 0) {
                throw new IllegalStateException("released more often than held");
            }
            last = --walks == 0 && !owned;
        }
        if (last) {
            table.close();
        }
    }

    /** The owner lets go (its instance is destroyed); the table is freed now unless a walk holds it. Idempotent. */
    void releaseOwner() {
        boolean last;
        synchronized (this) {
            last = owned && walks == 0;
            owned = false;
        }
        if (last) {
            table.close();
        }
    }
}
