/**
 * Network values shared by the daemon's listeners: {@link dmsnap.net.ListenAddress}
 * ({@code --nbd-listen}, {@code --metrics}). Depends on no other dmsnap package, so the metrics,
 * NBD and daemon packages can all use it without depending on each other.
 */
package dmsnap.net;
