package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.target.TargetTypes;

/** Registers {@code snapshot-origin} and {@code snapshot} over one registry and copier. */
public final class SnapshotTargets {
    private SnapshotTargets() {
    }

    public static TargetTypes register(TargetTypes types, Registry registry, ChunkCopier copier) {
        types.register(OriginTarget.type(registry, copier));
        types.register(SnapshotTarget.type(registry, copier));
        return types;
    }
}
