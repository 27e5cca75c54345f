package dmsnap.store.device;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A block device as dmsnap's targets and stores see it: a fixed-size array of bytes addressed
 * in bytes, with a logical block size that every offset and length must respect, a volatile
 * write cache that {@link #flush()} makes durable, and discard / write-zeroes.
 *
 * <p>All methods may be called concurrently from any thread. Errors from the environment are
 * {@link IOException}s (usually {@code dmsnap.ffm.ErrnoException}); a request outside the device
 * or misaligned is a caller bug and fails with {@link IllegalArgumentException} before any I/O,
 * except past the end of a device that shrank under its user (a truncated file): that is EIO.
 * After {@link #close()} every call fails with {@link IllegalStateException}.
 */
public interface Device extends AutoCloseable {

    /** A name for messages: the path, or a description. */
    String name();

    /** Size in bytes, as last read (see {@link #refreshSize()}). */
    long sizeBytes();

    /** Size in 512-byte sectors, rounded down. */
    default long sizeSectors() {
        return sizeBytes() >>> 9;
    }

    /** Re-reads the size from the backing file or device (it may have grown) and returns it. */
    default long refreshSize() throws IOException {
        return sizeBytes();
    }

    /** The smallest addressable unit: offsets and lengths of I/O must be multiples of it. */
    int logicalBlockBytes();

    /** Alignment the buffer's address must have (1 when anything goes). */
    int bufferAlignmentBytes();

    /** Reads {@code dst.byteSize()} bytes at {@code offsetBytes}; the range must lie inside the device. */
    void read(long offsetBytes, MemorySegment dst) throws IOException;

    /**
     * Reads as {@link #read} does, but only if that needs no wait for the device: the page cache
     * holds every byte (the kernel's {@code RWF_NOWAIT}, {@code REQ_NOWAIT}). A device that cannot
     * tell without waiting, or reads around the page cache (O_DIRECT, memory), says false (the
     * default) without trying.
     *
     * @return false when the read would wait: the caller reads the normal way; {@code dst} may
     *     hold part of the data meanwhile
     * @throws IOException the read failed, as {@link #read} would have
     */
    default boolean readIfCached(long offsetBytes, MemorySegment dst) throws IOException {
        return false;
    }

    /**
     * {@link #readIfCached} when {@code nowait}, else {@link #read} (then true): for callers with
     * one read path for both.
     */
    default boolean read(long offsetBytes, MemorySegment dst, boolean nowait) throws IOException {
        if (nowait) {
            return readIfCached(offsetBytes, dst);
        }
        read(offsetBytes, dst);
        return true;
    }

    /** Writes all of {@code src} at {@code offsetBytes}; durable only after {@link #flush()}. */
    void write(long offsetBytes, MemorySegment src) throws IOException;

    /** Makes every write that completed before this call durable. */
    void flush() throws IOException;

    /** The range may afterwards read as zeroes or as its old contents. */
    void discard(long offsetBytes, long lengthBytes) throws IOException;

    /** The range reads back as zeroes afterwards. */
    void writeZeroes(long offsetBytes, long lengthBytes) throws IOException;

    /**
     * Reserves the file system's blocks for {@code [offsetBytes, offsetBytes + lengthBytes)}
     * without changing the contents or the size ({@code fallocate} with FALLOC_FL_KEEP_SIZE of a
     * sparse file), so that first writes there allocate nothing. The range must lie inside the
     * device.
     *
     * @return false when this device has nothing to reserve (a block device, memory, a file that
     *         has no holes): asking again later is pointless
     * @throws IOException ENOSPC; EOPNOTSUPP from a file system without fallocate
     */
    default boolean allocate(long offsetBytes, long lengthBytes) throws IOException {
        checkRequest(this, "allocate", offsetBytes, lengthBytes, null);
        return false;
    }

    /**
     * What lies at {@code offsetBytes}: data or a hole, and how far it goes, at most {@code
     * maxBytes} (at least one logical block, or to the end). A device that cannot tell (a block
     * device, memory) reports data. {@code [offsetBytes, offsetBytes + maxBytes)} must lie inside
     * the device and {@code maxBytes} be positive.
     */
    default Extent extentAt(long offsetBytes, long maxBytes) throws IOException {
        checkRequest(this, "extentAt", offsetBytes, maxBytes, null);
        return Extent.data(maxBytes);
    }

    /**
     * Maps {@code [offsetBytes, offsetBytes + lengthBytes)} for metadata, or returns null when
     * this device cannot map that range (the caller then uses {@link #read}/{@link #write}). The
     * range must lie inside the device.
     */
    default MetadataMap mapMetadata(long offsetBytes, long lengthBytes) throws IOException {
        return null;
    }

    /**
     * This device through the page cache (the {@code writeback} cache mode's COW data): the same
     * data and size, read and written without O_DIRECT, made durable by the same {@link #flush()}.
     * Owned by this device (closing it does nothing; it goes when this device is closed). This
     * device itself when it has no page cache to go through (memory, a mapped device) or goes
     * through it already.
     *
     * @throws IOException the second descriptor could not be opened
     */
    default Device buffered() throws IOException {
        return this;
    }

    /** Idempotent; waits for I/O in progress. */
    @Override
    void close() throws IOException;

    /**
     * Checks a request against this device: inside {@code [0, sizeBytes())}, offset and length
     * multiples of the logical block size, buffer aligned. Throws {@link IllegalArgumentException}
     * with a one-line reason otherwise.
     */
    static void checkRequest(Device device, String op, long offsetBytes, long lengthBytes, MemorySegment buffer) {
        long size = device.sizeBytes();
        if (offsetBytes < 0 || lengthBytes < 0 || offsetBytes > size || lengthBytes > size - offsetBytes) {
            throw new IllegalArgumentException(op + "(" + device.name() + ", offset=" + offsetBytes + ", length="
                    + lengthBytes + ") is outside the device (size " + size + " bytes)");
        }
        int block = device.logicalBlockBytes();
        if (offsetBytes % block != 0 || lengthBytes % block != 0) {
            throw new IllegalArgumentException(op + "(" + device.name() + ", offset=" + offsetBytes + ", length="
                    + lengthBytes + ") is not aligned to the logical block size (" + block + " bytes)");
        }
        int align = device.bufferAlignmentBytes();
        if (buffer != null && align > 1 && buffer.address() % align != 0) {
            throw new IllegalArgumentException(op + "(" + device.name() + ", offset=" + offsetBytes + ", length="
                    + lengthBytes + "): the buffer address must be aligned to " + align + " bytes");
        }
    }
}
