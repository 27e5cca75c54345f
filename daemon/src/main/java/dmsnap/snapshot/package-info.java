/**
 * The snapshot targets ({@code dm-snap.c}): {@link dmsnap.snapshot.OriginTarget}
 * ({@code snapshot-origin}), {@link dmsnap.snapshot.SnapshotTarget} ({@code snapshot}), the
 * per-origin {@link dmsnap.snapshot.Registry} of snapshots, and copy-out through the chunk
 * copier with pending exceptions.
 *
 * <p>Lock order: {@link dmsnap.snapshot.Registry} (read for origin writes, write for
 * registration and handover), then a {@link dmsnap.snapshot.Snapshot}'s monitor. Waiting for a
 * copy never happens while holding either.
 */
package dmsnap.snapshot;
