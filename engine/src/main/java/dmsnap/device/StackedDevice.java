package dmsnap.device;

import dmsnap.store.device.Device;
import dmsnap.store.device.Extent;
import dmsnap.target.Allocation;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;

/**
 * A mapped device used as a backing device of another table ({@code dm:NAME}): its I/O goes
 * through the lower device's live table, suspend and all. While held, the lower device counts
 * as open, so it cannot be removed without {@code --force}, as the kernel refuses to remove a
 * device another table uses.
 */
final class StackedDevice implements Device {
    private final MappedDevice lower;
    private boolean closed;

    StackedDevice(MappedDevice lower) {
        this.lower = lower;
        lower.open();
    }

    @Override
    public String name() {
        return "dm:" + lower.name();
    }

    @Override
    public long sizeBytes() {
        return lower.sizeSectors() << 9;
    }

    @Override
    public int logicalBlockBytes() {
        return 512;
    }

    /** The lower table may end in O_DIRECT files with 4 KiB rules: ask for the strictest. */
    @Override
    public int bufferAlignmentBytes() {
        return 4096;
    }

    private void submit(IoRequest io) throws IOException {
        try {
            lower.submit(io);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for " + name());
        }
    }

    @Override
    public void read(long offsetBytes, MemorySegment dst) throws IOException {
        Device.checkRequest(this, "read", offsetBytes, dst.byteSize(), dst);
        submit(IoRequest.read(offsetBytes >>> 9, dst));
    }

    /** Through the lower device's table, without waiting ({@link MappedDevice#readIfCached}). */
    @Override
    public boolean readIfCached(long offsetBytes, MemorySegment dst) throws IOException {
        Device.checkRequest(this, "read", offsetBytes, dst.byteSize(), dst);
        return lower.readIfCached(IoRequest.read(offsetBytes >>> 9, dst));
    }

    @Override
    public void write(long offsetBytes, MemorySegment src) throws IOException {
        Device.checkRequest(this, "write", offsetBytes, src.byteSize(), src);
        submit(IoRequest.write(offsetBytes >>> 9, src, false));
    }

    @Override
    public void flush() throws IOException {
        submit(IoRequest.flush());
    }

    @Override
    public void discard(long offsetBytes, long lengthBytes) throws IOException {
        Device.checkRequest(this, "discard", offsetBytes, lengthBytes, null);
        submit(new IoRequest(IoRequest.Op.DISCARD, offsetBytes >>> 9, lengthBytes >>> 9, null, false));
    }

    @Override
    public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
        Device.checkRequest(this, "writeZeroes", offsetBytes, lengthBytes, null);
        submit(new IoRequest(IoRequest.Op.WRITE_ZEROES, offsetBytes >>> 9, lengthBytes >>> 9, null, false));
    }

    /** The lower device's block status: holes pass through a stack of tables. */
    @Override
    public Extent extentAt(long offsetBytes, long maxBytes) throws IOException {
        Device.checkRequest(this, "extentAt", offsetBytes, maxBytes, null);
        try {
            Allocation a = lower.allocation(offsetBytes >>> 9, maxBytes >>> 9);
            return a.isHole() ? Extent.hole(a.sectors() << 9) : Extent.data(a.sectors() << 9);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for " + name());
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            lower.close();
        }
    }

    @Override
    public String toString() {
        return "StackedDevice[" + name() + "]";
    }
}
