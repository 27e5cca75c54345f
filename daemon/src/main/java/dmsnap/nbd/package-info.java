/**
 * The NBD server (NetworkBlockDevice/nbd doc/proto.md): every mapped device is an export under
 * its name. {@link dmsnap.nbd.NbdServer} listens and owns the I/O threads and request buffers;
 * {@code NbdHandshake} is the fixed newstyle negotiation; {@code NbdConnection} is one client's
 * transmission phase (reader, I/O threads, writer), over {@code NbdCodec} (the bytes of requests
 * and replies, constants in {@code NbdProtocol}) and {@code NbdRequestRules} (which requests may
 * run, and the error of those that may not); {@code NbdExport} adapts a
 * {@link dmsnap.device.MappedDevice}; {@code BufferPool} bounds request memory. Access:
 * {@code PeerAccess} (who may use the Unix socket), {@link dmsnap.nbd.NbdTls} (credentials) and
 * {@code TlsSession} (TLS on a connection after STARTTLS, under {@code NbdChannel}).
 *
 * <p>Locks: none of its own beyond thread-safe queues and semaphores, and a connection's lock
 * for sending; with TLS, under it, the session's write lock (a reader may take it after the
 * session's read lock to answer a KeyUpdate, never the other way round); and the server's lock
 * for a watchdog pass (under it, only the warning limit's). A request takes its
 * connection's in-flight permit, then a buffer from its connection's share of the pool: never
 * waiting for the shared budget, only, when that has no room, for the connection's own reserve
 * (see {@code BufferPool}), so no connection waits for buffers another holds. Device I/O runs on the I/O threads, or on the connection's thread for a
 * queue-depth-1 client and for requests streamed through the reserve.
 */
package dmsnap.nbd;
