package dmsnap.snapshot;

import dmsnap.store.copy.ChunkCopier;
import dmsnap.target.TargetTypes;

/** Registers {@code snapshot-origin}, {@code snapshot} and {@code snapshot-merge} over one registry and copier. */
public final class SnapshotTargets {
    private SnapshotTargets() {}

    public static TargetTypes register(TargetTypes types, Registry registry, ChunkCopier copier) {
        return register(types, registry, copier, CommitObserver.NONE);
    }

    /** The same, with every snapshot telling {@code commits} how long its exception commits take. */
    public static TargetTypes register(
            TargetTypes types, Registry registry, ChunkCopier copier, CommitObserver commits) {
        return register(types, registry, copier, commits, MergeSettings.DEFAULTS);
    }

    /** The same, with merges batching their commits as {@code merge} says. */
    public static TargetTypes register(
            TargetTypes types, Registry registry, ChunkCopier copier, CommitObserver commits, MergeSettings merge) {
        types.register(OriginTarget.type(registry, copier));
        types.register(SnapshotTarget.type(registry, copier, commits));
        types.register(SnapshotMergeTarget.type(registry, copier, commits, merge));
        return types;
    }
}
