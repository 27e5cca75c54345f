/**
 * The snapshot targets ({@code dm-snap.c}): {@link dmsnap.snapshot.OriginTarget}
 * ({@code snapshot-origin}), {@link dmsnap.snapshot.SnapshotTarget} ({@code snapshot}),
 * {@link dmsnap.snapshot.SnapshotMergeTarget} ({@code snapshot-merge}) with its background
 * {@link dmsnap.snapshot.Merger}, the per-origin {@link dmsnap.snapshot.Registry} of snapshots,
 * and copy-out through the chunk copier with pending exceptions ({@link dmsnap.snapshot.CopyOut}).
 *
 * <p>Lock order: {@link dmsnap.snapshot.Registry} (read for origin writes, write for
 * registration and handover), then a {@link dmsnap.snapshot.Snapshot}'s monitor. Waiting for a
 * copy never happens while holding either. A resume that must pause the origin's merge stops
 * the {@link dmsnap.snapshot.Merger} (waiting for its step) before it takes the origin's I/O lock
 * exclusively; the merge step takes that lock only shared, like an origin write.
 */
package dmsnap.snapshot;
