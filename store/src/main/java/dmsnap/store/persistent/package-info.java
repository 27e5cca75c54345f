/**
 * The kernel's persistent exception store ({@code dm-snap-persistent.c}): {@link
 * dmsnap.store.persistent.PersistentExceptionStore} over the on-disk layout of {@code
 * PersistentLayout}, plus {@link dmsnap.store.persistent.CowInspector} for the offline
 * {@code dmsnap cow} tools. The format is read and written in one place each: {@code DiskHeader}
 * (the header), {@code AreaEntries} (an area's entries), and {@code AreaWalker} (the walk of the
 * exception list that both the table load and {@code cow check|dump} use, reporting damage in
 * the words of {@link dmsnap.store.persistent.CowDamage}). Locks: each store's own lock (see the
 * class comment).
 */
package dmsnap.store.persistent;
