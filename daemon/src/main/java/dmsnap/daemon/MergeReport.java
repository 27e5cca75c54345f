package dmsnap.daemon;

import dmsnap.control.ResponseData.MergeRow;
import dmsnap.snapshot.SnapshotMergeTarget;
import java.util.Locale;

/**
 * What {@code snapshot merge --status} reports of one merge: the line it prints and the row
 * {@code --json} prints ({@link MergeRow}; the response gathers the rows into a
 * {@link dmsnap.control.ResponseData.MergeStatus}). One factory per kind of merge: waiting for
 * the origin's activation, running (or stopped, failed, invalid, complete), finished, and a
 * snapshot-merge table loaded by hand.
 */
record MergeReport(String line, MergeRow row) {

    /** A merge deferred while its origin is open ({@code users}) or not active ({@code active} false). */
    static MergeReport waiting(String origin, String snapshot, String cow, boolean active, int users) {
        return new MergeReport(
                origin + ": merge of " + snapshot + " waits for the next activation of " + origin
                        + (active ? " (open by " + users + ")" : " (not active)"),
                MergeRow.waiting(origin, snapshot, cow, users));
    }

    /**
     * A merge whose snapshot-merge table is live; {@code recordedTotalBytes} is what the COW held
     * when it started, {@code status} the origin's status line.
     */
    static MergeReport running(
            String origin,
            String snapshot,
            String cow,
            long recordedTotalBytes,
            SnapshotMergeTarget.Progress p,
            String status) {
        long remaining = remainingBytes(p);
        long total = Math.max(recordedTotalBytes, remaining);
        double percent = total == 0 ? 100.0 : 100.0 * (total - remaining) / total;
        String st = stateOf(p);
        String what = switch (st) {
            case "failed" -> "failed (Merge failed; the daemon log has the error): reactivate " + origin + " to retry";
            case "invalid" -> "impossible: the snapshot is invalid";
            case "complete" -> "complete, the table is being replaced";
            default -> st;
        };
        return new MergeReport(
                String.format(
                        Locale.ROOT,
                        "%s: merging %s: %s, %.1f%% (%s of %s), status %s",
                        origin,
                        snapshot,
                        what,
                        percent,
                        mib(total - remaining),
                        mib(total),
                        status),
                MergeRow.running(
                        origin,
                        snapshot,
                        cow,
                        st,
                        Math.round(percent * 10) / 10.0,
                        total - remaining,
                        total,
                        remaining,
                        status));
    }

    /** A merge this daemon finished: the origin's table is now {@code table}. */
    static MergeReport finished(String origin, String snapshot, long totalBytes, String table) {
        return new MergeReport(
                origin + ": merge of " + snapshot + " finished; " + origin + " is now: " + table,
                MergeRow.finished(origin, snapshot, totalBytes, table));
    }

    /** A snapshot-merge table loaded by hand into {@code device}: reported, never finished. */
    static MergeReport byHand(String device, SnapshotMergeTarget.Progress p, String status) {
        String st = stateOf(p);
        return new MergeReport(
                device + ": " + st + " (a snapshot-merge table loaded by hand: replace it when done), "
                        + mib(remainingBytes(p)) + " left, status " + status,
                MergeRow.byHand(device, st, remainingBytes(p), status));
    }

    /** Whether this merge is the one of {@code name} (its origin or snapshot); a null name matches all. */
    boolean concerns(String name) {
        return name == null || name.equals(row.origin()) || name.equals(row.snapshot());
    }

    private static long remainingBytes(SnapshotMergeTarget.Progress p) {
        return p.remainingChunks() * p.chunkBytes();
    }

    private static String stateOf(SnapshotMergeTarget.Progress p) {
        if (!p.valid()) {
            return "invalid";
        }
        if (p.complete()) {
            return "complete";
        }
        if (p.failed() && !p.running()) {
            return "failed";
        }
        return p.running() ? "merging" : "stopped";
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }
}
