/**
 * The daemon's Prometheus metrics ({@code dmsnap daemon --metrics HOST:PORT}): per device I/O
 * counters, COW usage and state of snapshot and snapshot-merge devices, chunk copier totals,
 * the exception commit latency histogram and the count of snapshot invalidations, served as
 * Prometheus text at {@code /metrics} by the Prometheus Java client's HTTP server ({@link
 * dmsnap.metrics.DaemonMetrics}).
 *
 * <p>The engine knows nothing of Prometheus: devices count I/O in their own {@link
 * dmsnap.device.IoStats}, the copier keeps its own totals, the snapshot targets report commits
 * and invalidations to a {@link dmsnap.snapshot.CommitObserver}; the collectors here read
 * those, and device status, only when scraped. Locks: none of its own. A scrape, on an HTTP
 * server thread, takes the {@code DeviceManager} monitor to list devices and each device's
 * control lock for its status, in that order, as {@code dmsetup status} does; the commit
 * observer runs on store committers (and on threads that invalidate) and only touches the
 * library's histogram and counter (adders, plus a short buffer append while a scrape is reading
 * it), never a dmsnap lock.
 */
package dmsnap.metrics;
