package dmsnap.control;

/**
 * The daemon's lvconvert --merge flow, behind the control verbs {@code merge} (start merging a
 * snapshot into its origin, or defer it while the origin is open) and {@code merge-status}
 * (progress of the merges the daemon knows of). Implemented by the daemon; the handler only
 * forwards.
 */
public interface MergeService {
    /** Starts (or defers) merging the snapshot device {@code snapshot}; the lines describe the steps. */
    ControlResponse merge(String snapshot);

    /** The merges of {@code name} (a snapshot or origin device), or all of them when null. */
    ControlResponse status(String name);
}
