package dmsnap.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.List;

/**
 * The structured data of successful responses: what {@code --json} prints, bound by {@link Json}.
 * {@code status} and {@code table} answer a map of device name to lines, {@code ls} and
 * {@code targets} a map of name to text; the others are these records. Key names and types are
 * an interface for scripts: change them only compatibly.
 */
public final class ResponseData {
    private ResponseData() {}

    /** {@code info}: {@code {"devices":[...]}}. */
    public record Info(List<Device> devices) {}

    /**
     * One device in {@code info}; {@code uuid} is null when it has none, {@code state} ACTIVE or
     * SUSPENDED; {@code cache} the live table's cache mode ({@code none}, {@code writeback},
     * {@code directsync}), null without a live table.
     */
    public record Device(
            String name,
            String uuid,
            String state,
            boolean readOnly,
            String tablesPresent,
            int openCount,
            long eventNumber,
            int major,
            int minor,
            int targets,
            String cache) {}

    /** {@code merge}: the merge started ({@code merging}) or deferred ({@code waiting}). */
    /**
     * {@code changed}: the byte ranges of {@code device} that changed since snapshot {@code since}
     * was taken (a safe superset: see {@code dmsnap.snapshot.ChangeMap}), in order, merged.
     */
    public record Changed(String device, String since, long size, long changedBytes, List<Extent> extents) {}

    /** A byte range of a device. */
    public record Extent(long offset, long length) {}

    public record MergeStarted(String origin, String snapshot, String state) {}

    /** {@code merge-status}: {@code {"merges":[...]}}. */
    public record MergeStatus(List<MergeRow> merges) {}

    /**
     * One merge in {@code merge-status}. Which keys are there depends on the state: a waiting merge
     * has {@code cow} and {@code openCount}; a running (or failed, invalid, complete, stopped) one
     * {@code cow}, {@code percent}, the byte counts and the origin's {@code status}; a finished one
     * {@code percent} 100, {@code mergedBytes}, {@code totalBytes} and the origin's new {@code table};
     * a snapshot-merge table loaded by hand has {@code snapshot} null, {@code remainingBytes} and
     * {@code status}. Absent keys are null here.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record MergeRow(
            String origin,
            @JsonInclude(JsonInclude.Include.ALWAYS) String snapshot,
            String cow,
            String state,
            Integer openCount,
            Double percent,
            Long mergedBytes,
            Long totalBytes,
            Long remainingBytes,
            String status,
            String table) {

        public static MergeRow waiting(String origin, String snapshot, String cow, int openCount) {
            return new MergeRow(origin, snapshot, cow, "waiting", openCount, null, null, null, null, null, null);
        }

        public static MergeRow running(
                String origin,
                String snapshot,
                String cow,
                String state,
                double percent,
                long mergedBytes,
                long totalBytes,
                long remainingBytes,
                String status) {
            return new MergeRow(
                    origin, snapshot, cow, state, null, percent, mergedBytes, totalBytes, remainingBytes, status, null);
        }

        public static MergeRow finished(String origin, String snapshot, long totalBytes, String table) {
            return new MergeRow(
                    origin, snapshot, null, "finished", null, 100.0, totalBytes, totalBytes, null, null, table);
        }

        /** A snapshot-merge table loaded by hand: the flow does not know the snapshot. */
        public static MergeRow byHand(String origin, String state, long remainingBytes, String status) {
            return new MergeRow(origin, null, null, state, null, null, null, null, remainingBytes, status, null);
        }
    }
}
