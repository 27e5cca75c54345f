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
        return register(types, registry, copier, commits, merge, CommitTimer.shared());
    }

    /**
     * The same, with the exceptions deferred by the cache modes {@code none} and {@code
     * writeback} committed at the latest when {@code timer} runs their task (the commit interval).
     */
    public static TargetTypes register(
            TargetTypes types,
            Registry registry,
            ChunkCopier copier,
            CommitObserver commits,
            MergeSettings merge,
            CommitTimer timer) {
        types.register(OriginTarget.type(registry, copier));
        types.register(SnapshotTarget.type(registry, copier, commits, timer));
        types.register(SnapshotMergeTarget.type(registry, copier, commits, merge, timer));
        return types;
    }
}
