/**
 * Exception stores and the exception table, mirroring {@code dm-exception-store.h}: the store
 * interface the snapshot targets drive, the compact in-memory table of completed remaps, and
 * the values they exchange.
 */
package dmsnap.store;
