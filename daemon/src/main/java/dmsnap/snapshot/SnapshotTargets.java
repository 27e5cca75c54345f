package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.target.TargetTypes;

/** Registers {@code snapshot-origin}, {@code snapshot} and {@code snapshot-merge} over one registry and copier. */
public final class SnapshotTargets {
    private SnapshotTargets() {
    }

    public static TargetTypes register(TargetTypes types, Registry registry, ChunkCopier copier) {
        types.register(OriginTarget.type(registry, copier));
        types.register(SnapshotTarget.type(registry, copier));
        types.register(SnapshotMergeTarget.type(registry, copier));
        return types;
    }
}
