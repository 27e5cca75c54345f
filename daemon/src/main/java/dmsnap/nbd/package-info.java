/**
 * The NBD server (NetworkBlockDevice/nbd doc/proto.md): every mapped device is an export under
 * its name. {@link dmsnap.nbd.NbdServer} listens and owns the I/O threads and request buffers;
 * {@code NbdHandshake} is the fixed newstyle negotiation; {@code NbdConnection} is one client's
 * transmission phase (reader, I/O threads, writer); {@code NbdExport} adapts a
 * {@link dmsnap.device.MappedDevice}; {@code BufferPool} bounds request memory.
 *
 * <p>Locks: none of its own beyond thread-safe queues and semaphores; a request takes, in order,
 * its connection's in-flight permit, the connection's buffer quota, the pool's budget. Device
 * I/O runs on the I/O threads, or on the connection's thread for a queue-depth-1 client.
 */
package dmsnap.nbd;
