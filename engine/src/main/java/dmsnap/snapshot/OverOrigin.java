package dmsnap.snapshot;

import dmsnap.target.ChangeSink;
import dmsnap.target.Target;
import java.io.IOException;
import java.util.Set;

/**
 * A target whose data is its origin's as seen at some point (snapshot-origin, snapshot,
 * snapshot-merge): it reports changes against the origin's other snapshots through its {@link
 * ChangeMap}.
 */
interface OverOrigin extends Target {
    /** The map of this target's view: its origin, and the snapshot whose exceptions it reads, if any. */
    ChangeMap changes();

    @Override
    default Set<String> baselines() {
        return changes().baselines();
    }

    @Override
    default void changedRuns(String baseline, long sector, long maxSectors, ChangeSink sink) throws IOException {
        changes().runs(baseline, sector, maxSectors, sink);
    }
}
