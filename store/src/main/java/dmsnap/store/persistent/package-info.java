/**
 * The kernel's persistent exception store ({@code dm-snap-persistent.c}): {@link
 * dmsnap.store.persistent.PersistentExceptionStore} over the on-disk layout of {@code
 * PersistentLayout}, plus {@link dmsnap.store.persistent.CowInspector} for the offline
 * {@code dmsnap cow} tools. Locks: each store's own lock (see the class comment).
 */
package dmsnap.store.persistent;
