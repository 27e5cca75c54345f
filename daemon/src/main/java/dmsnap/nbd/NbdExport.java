package dmsnap.nbd;

import dmsnap.device.MappedDevice;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A mapped device as one client's export: its geometry fixed at negotiation (size, block
 * sizes, flags, as the client was told), requests turned into {@link IoRequest}s on the device.
 * Holds the device open (its open count) until {@link #close()}.
 *
 * <p>Flags: {@code READ_ONLY} when the live table was loaded read-only (then no
 * {@code SEND_WRITE_ZEROES} or {@code SEND_TRIM}); {@code SEND_FLUSH} and {@code SEND_FUA} always (a flush reaches every target,
 * and a snapshot commits every exception it deferred in its cache mode, whichever connection
 * wrote it; a FUA write is committed when it completes); {@code SEND_WRITE_ZEROES} always,
 * done as writes of zeroes so that an origin write of zeroes copies out like any other;
 * {@code SEND_TRIM} only when every target of the live table takes discards;
 * {@code CAN_MULTI_CONN} because no connection keeps a cache: every request goes to the same
 * device, so a flush on one connection covers the writes completed on all of them.
 */
final class NbdExport implements AutoCloseable {
    private final MappedDevice device;
    private final String name;
    private final long sizeBytes;
    private final int minimumBlockBytes;
    private final boolean trim;
    private final boolean readOnly;
    private final MemorySegment zeroes;
    private boolean closed;

    private NbdExport(MappedDevice device, String name, MemorySegment zeroes) {
        this.device = device;
        this.name = name;
        this.sizeBytes = device.sizeSectors() << 9;
        this.minimumBlockBytes = Math.max(512, device.logicalBlockBytes());
        this.readOnly = device.isReadOnly();
        this.trim = !readOnly && device.supportsDiscard();
        this.zeroes = zeroes;
    }

    /** Opens {@code device} for a client (counted in its open count). */
    static NbdExport open(MappedDevice device, MemorySegment zeroes) {
        device.open();
        return new NbdExport(device, device.name(), zeroes);
    }

    String name() {
        return name;
    }

    long sizeBytes() {
        return sizeBytes;
    }

    /** The device exported, for block status. */
    MappedDevice device() {
        return device;
    }

    int minimumBlockBytes() {
        return minimumBlockBytes;
    }

    int preferredBlockBytes() {
        return Math.max(4096, minimumBlockBytes);
    }

    boolean canTrim() {
        return trim;
    }

    /** The table was loaded read-only: writes, trims and zeroes get EPERM. */
    boolean readOnly() {
        return readOnly;
    }

    /** The transmission flags; {@code SEND_DF} only with structured replies (a read with DF is one chunk). */
    int transmissionFlags(boolean structuredReplies) {
        int flags = NbdProtocol.NBD_FLAG_HAS_FLAGS
                | NbdProtocol.NBD_FLAG_SEND_FLUSH
                | NbdProtocol.NBD_FLAG_SEND_FUA
                | NbdProtocol.NBD_FLAG_CAN_MULTI_CONN;
        if (readOnly) {
            flags |= NbdProtocol.NBD_FLAG_READ_ONLY;
        } else {
            flags |= NbdProtocol.NBD_FLAG_SEND_WRITE_ZEROES;
        }
        if (trim) {
            flags |= NbdProtocol.NBD_FLAG_SEND_TRIM;
        }
        if (structuredReplies) {
            flags |= NbdProtocol.NBD_FLAG_SEND_DF;
        }
        return flags;
    }

    /** What {@code NBD_INFO_DESCRIPTION} says: the device's targets. */
    static String description(MappedDevice device) {
        var table = device.liveTable();
        if (table == null) {
            return "dmsnap device without a table";
        }
        StringBuilder sb = new StringBuilder("dmsnap");
        table.lines().stream()
                .map(l -> l.targetType())
                .distinct()
                .forEach(t -> sb.append(' ').append(t));
        return sb.toString();
    }

    /** Whether the device reads through the page cache: a large read is then read whole, not in pieces at once. */
    boolean readsThroughPageCache() {
        return device.readsThroughPageCache();
    }

    /** Waits while the device is suspended, so that I/O threads are not parked on it. */
    void awaitResumed() throws InterruptedException {
        device.awaitResumed();
    }

    void read(long offsetBytes, MemorySegment into) throws IOException, InterruptedException {
        device.submit(IoRequest.read(offsetBytes >>> 9, into));
    }

    /**
     * Reads only if that needs no wait ({@link MappedDevice#readIfCached}: the page cache holds
     * the data, the device is not suspended, no copy of it is in flight); false: read it the
     * normal way.
     */
    boolean readIfCached(long offsetBytes, MemorySegment into) throws IOException {
        return device.readIfCached(IoRequest.read(offsetBytes >>> 9, into));
    }

    void write(long offsetBytes, MemorySegment from, boolean fua) throws IOException, InterruptedException {
        device.submit(IoRequest.write(offsetBytes >>> 9, from, fua));
    }

    void flush() throws IOException, InterruptedException {
        device.submit(IoRequest.flush());
    }

    void trim(long offsetBytes, long lengthBytes, boolean fua) throws IOException, InterruptedException {
        device.submit(new IoRequest(IoRequest.Op.DISCARD, offsetBytes >>> 9, lengthBytes >>> 9, null, false));
        if (fua) {
            flush();
        }
    }

    /** Zeroes as writes, so that every target (copy-out included) treats them as data. */
    void writeZeroes(long offsetBytes, long lengthBytes, boolean fua) throws IOException, InterruptedException {
        long at = offsetBytes;
        long end = offsetBytes + lengthBytes;
        while (at < end) {
            long piece = Math.min(zeroes.byteSize(), end - at);
            device.submit(IoRequest.write(at >>> 9, zeroes.asSlice(0, piece), false));
            at += piece;
        }
        if (fua) {
            flush();
        }
    }

    /** Gives the device back (its open count drops); idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            device.close();
        }
    }
}
