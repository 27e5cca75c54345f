package dmsnap.snapshot;

import dmsnap.engine.testing.SnapshotEngine;

/**
 * A {@link SnapshotEngine}'s merge, seen through this package's own state (the registry's
 * snapshots and their merge loops), which the shared fixture cannot reach.
 */
final class MergeProbes {
    private MergeProbes() {}

    /** The origin's merging snapshot (or null). */
    static Snapshot merging(SnapshotEngine e) {
        for (Snapshot s : e.registry.allSnapshots()) {
            if (s.isMerging()) {
                return s;
            }
        }
        return null;
    }

    /**
     * Waits until the merge loop has stopped (finished, failed, or stopped by a suspend). The bound
     * only keeps a hung merge from hanging the suite: a million exceptions merge in about 5 s idle.
     */
    static void awaitMergeStopped(SnapshotEngine e) throws InterruptedException {
        long deadline = System.nanoTime() + 600_000_000_000L;
        Snapshot m;
        while ((m = merging(e)) != null && m.merger().isRunning()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the merge did not stop within 600 s");
            }
            Thread.sleep(1);
        }
    }
}
