package dmsnap.store.device;

import dmsnap.ffm.InFlight;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A device held in off-heap memory (an arena owned by this object). Writes are durable at once,
 * so {@link #flush()} does nothing; discard zeroes. For tests, benchmarks and transient COWs.
 */
public final class MemoryDevice implements Device {
    private static final int ALIGNMENT = 4096;

    private final String name;
    private final int logicalBlockBytes;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    private final InFlight inFlight;

    /** A zero-filled device of {@code sizeBytes} with 512-byte logical blocks. */
    public MemoryDevice(String name, long sizeBytes) {
        this(name, sizeBytes, 512);
    }

    public MemoryDevice(String name, long sizeBytes, int logicalBlockBytes) {
        this.name = Objects.requireNonNull(name, "name");
        if (logicalBlockBytes < 512 || Integer.bitCount(logicalBlockBytes) != 1) {
            throw new IllegalArgumentException(
                    "logical block size must be a power of two >= 512: " + logicalBlockBytes);
        }
        if (sizeBytes < 0 || sizeBytes % logicalBlockBytes != 0) {
            throw new IllegalArgumentException(
                    "size must be a non-negative multiple of " + logicalBlockBytes + ": " + sizeBytes);
        }
        this.logicalBlockBytes = logicalBlockBytes;
        this.memory = arena.allocate(Math.max(sizeBytes, 1), ALIGNMENT).asSlice(0, sizeBytes);
        this.inFlight = new InFlight(name);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long sizeBytes() {
        return memory.byteSize();
    }

    @Override
    public int logicalBlockBytes() {
        return logicalBlockBytes;
    }

    @Override
    public int bufferAlignmentBytes() {
        return 1;
    }

    @Override
    public void read(long offsetBytes, MemorySegment dst) {
        Device.checkRequest(this, "read", offsetBytes, dst.byteSize(), dst);
        inFlight.acquire();
        try {
            MemorySegment.copy(memory, offsetBytes, dst, 0, dst.byteSize());
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void write(long offsetBytes, MemorySegment src) {
        Device.checkRequest(this, "write", offsetBytes, src.byteSize(), src);
        inFlight.acquire();
        try {
            MemorySegment.copy(src, 0, memory, offsetBytes, src.byteSize());
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void flush() {
        inFlight.acquire();
        inFlight.release();
    }

    @Override
    public void discard(long offsetBytes, long lengthBytes) {
        writeZeroes(offsetBytes, lengthBytes);
    }

    @Override
    public void writeZeroes(long offsetBytes, long lengthBytes) {
        Device.checkRequest(this, "writeZeroes", offsetBytes, lengthBytes, null);
        inFlight.acquire();
        try {
            memory.asSlice(offsetBytes, lengthBytes).fill((byte) 0);
        } finally {
            inFlight.release();
        }
    }

    /** A slice of the device's own memory: stores are on the device at once, sync does nothing. */
    @Override
    public MetadataMap mapMetadata(long offsetBytes, long lengthBytes) {
        Device.checkRequest(this, "mapMetadata", offsetBytes, lengthBytes, null);
        MemorySegment slice = memory.asSlice(offsetBytes, lengthBytes);
        return new MetadataMap() {
            @Override
            public MemorySegment segment() {
                return slice;
            }

            @Override
            public void sync(long offset, long length) {
                java.util.Objects.checkFromIndexSize(offset, length, slice.byteSize());
            }

            @Override
            public void close() {
                // Nothing to release: the memory belongs to the device.
            }
        };
    }

    /** A read-only view of the whole device, for tests and checksums. */
    public MemorySegment contents() {
        return memory.asReadOnly();
    }

    @Override
    public void close() {
        if (inFlight.close()) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "MemoryDevice[" + name + ", " + memory.byteSize() + " bytes]";
    }
}
