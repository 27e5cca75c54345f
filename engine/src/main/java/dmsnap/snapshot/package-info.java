/**
 * The snapshot targets ({@code dm-snap.c}): {@link dmsnap.snapshot.OriginTarget}
 * ({@code snapshot-origin}), {@link dmsnap.snapshot.SnapshotTarget} ({@code snapshot}),
 * {@link dmsnap.snapshot.SnapshotMergeTarget} ({@code snapshot-merge}) with its background
 * {@link dmsnap.snapshot.Merger}, the per-origin {@link dmsnap.snapshot.Registry} of snapshots,
 * and copy-out through the chunk copier with pending exceptions ({@link dmsnap.snapshot.CopyOut}).
 * In the cache modes {@code none} and {@code writeback} the exceptions of snapshot writes are
 * committed later ({@code DeferredCommits}, {@link dmsnap.snapshot.CommitTimer}); origin writes
 * keep the kernel's order in every mode. In {@code writeback} long runs of new chunks go around
 * the page cache ({@code PageCacheBypass}).
 *
 * <p>Lock order: {@link dmsnap.snapshot.Registry} (read for origin writes, write for
 * registration and handover), then a snapshot's lock (its {@code SnapshotState}'s monitor), then
 * the monitor of its tracked reads or writes ({@code InFlightChunks}). Waiting for a copy, or for
 * tracked I/O to drain (which parks on the tracked chunks' monitor), never happens while holding
 * the registry's or the snapshot's lock. A resume that must pause the origin's merge stops
 * the {@link dmsnap.snapshot.Merger} (waiting for its step) before it takes the origin's I/O lock
 * exclusively; the merge step takes that lock only shared, like an origin write. So does a
 * change-map walk while it finds its baseline and takes hold of its table ({@code HeldTable},
 * whose monitor is taken last and guards only its holders): never in the middle of a handover.
 */
package dmsnap.snapshot;
