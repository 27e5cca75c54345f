package dmsnap.store.persistent;

import dmsnap.store.device.Device;
import dmsnap.store.device.MetadataMap;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One metadata chunk of a persistent COW (the header or an exception area) as a segment: an
 * mmap of the chunk where the device can map it (page-aligned chunks), otherwise an aligned
 * buffer read at open and written back block by block on {@link #sync}. Either way, stores
 * reach the device only through {@link #sync} (or, for a real mmap, kernel writeback), and are
 * durable after the device's next flush.
 */
final class MetadataChunk implements AreaWalker.Area {
    private final Device device;
    private final long offsetBytes;
    private final MetadataMap map;
    private final MemorySegment segment;
    private final AreaEntries entries;

    private MetadataChunk(Device device, long offsetBytes, MetadataMap map, MemorySegment segment) {
        this.device = device;
        this.offsetBytes = offsetBytes;
        this.map = map;
        this.segment = segment;
        this.entries = new AreaEntries(segment);
    }

    static MetadataChunk open(Device device, long offsetBytes, long lengthBytes) throws IOException {
        MetadataMap map = device.mapMetadata(offsetBytes, lengthBytes);
        if (map != null) {
            return new MetadataChunk(device, offsetBytes, map, map.segment());
        }
        // Freed by the garbage collector: closing a shared arena per area would stop every thread
        // for a handshake each time an area fills (see MapArenas).
        MemorySegment buffer = Arena.ofAuto().allocate(lengthBytes, Math.max(4096, device.bufferAlignmentBytes()));
        device.read(offsetBytes, buffer);
        return new MetadataChunk(device, offsetBytes, null, buffer);
    }

    MemorySegment segment() {
        return segment;
    }

    /** The chunk as an exception area. */
    @Override
    public AreaEntries entries() {
        return entries;
    }

    /** Starts reading a mapped chunk's pages in the background (see {@link MetadataMap#prefetch}). */
    void prefetch() {
        if (map != null) {
            map.prefetch();
        }
    }

    /** Writes {@code [offset, offset + length)} of the chunk to the device (not yet durable). */
    void sync(long offset, long length) throws IOException {
        if (map != null) {
            map.sync(offset, length);
            return;
        }
        // Whole units that keep the slice's address as aligned as the buffer (which is aligned to
        // the device's buffer alignment): a stacked device takes 512-byte blocks, but only from
        // 4096-aligned buffers.
        long unit = Math.max(device.logicalBlockBytes(), device.bufferAlignmentBytes());
        long from = offset - offset % unit;
        long to = Math.min(segment.byteSize(), (offset + length + unit - 1) / unit * unit);
        device.write(offsetBytes + from, segment.asSlice(from, to - from));
    }

    /**
     * Makes {@code [offset, offset + length)} durable at the device's next flush, without a
     * flush of its own where it can: a real file mapping's stores are dirty page cache already,
     * which that flush (fdatasync of the same file) writes back; otherwise {@link #sync}.
     */
    void writeBack(long offset, long length) throws IOException {
        if (map == null || !map.flushWritesBack()) {
            sync(offset, length);
        }
    }

    void syncAll() throws IOException {
        sync(0, segment.byteSize());
    }

    boolean isMapped() {
        return map != null;
    }

    /** Whether {@link #sync} alone makes the range durable (no device flush needed after it). */
    boolean syncIsDurable() {
        return map != null && map.syncIsDurable();
    }

    @Override
    public void close() {
        if (map != null) {
            map.close();
        }
    }

    /**
     * {@code e} as the I/O error it stands for when it is the JDK's report of a fault on a mapped
     * page ("a fault occurred in a[ recent] unsafe memory access operation"): SIGBUS, because the
     * page lies past the end of the file (it was truncated) or its file system could not give it
     * a block (it is full). Any other InternalError is a JVM problem and is thrown again.
     */
    static IOException mappedAccessFault(Device device, InternalError e) {
        if (e.getMessage() == null || !e.getMessage().contains("unsafe memory access")) {
            throw e;
        }
        return new IOException(
                "SIGBUS on the mapped metadata of " + device.name()
                        + " (the file is shorter than its mapping, or its file system is full)",
                e);
    }
}
