package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;
import dmsnap.ffm.internal.Syscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A shared {@code mmap} of part of a file or block device (dmsnap maps only COW metadata:
 * the header and exception areas). Stores into {@link #segment()} reach the file; {@link #sync}
 * ({@code msync(MS_SYNC)}) makes a range durable in the file system or device page cache; the
 * caller follows it with a device flush ({@code fdatasync}) where the cache is volatile.
 *
 * <p>{@link #close()} unmaps; the segment is unusable afterwards (its arena is closed). One
 * owner closes it; concurrent use with close is a caller bug.
 */
public final class MappedRegion implements AutoCloseable {
    /** The page size mappings are aligned to. x86-64 and arm64 (4K kernels) both use 4096. */
    public static final long PAGE_BYTES = 4096;

    private final Path path;
    private final long fileOffsetBytes;
    private final boolean writable;
    /** The arena the mapping lives in: its own, or one it shares with other regions (see {@link NativeFile#map(long, long, Arena)}). */
    private final Arena arena;

    private final boolean ownsArena;
    private final MemorySegment segment;
    private final AtomicBoolean closed = new AtomicBoolean();

    MappedRegion(
            Path path, MemorySegment address, long fileOffsetBytes, long lengthBytes, boolean writable, Arena shared) {
        this.path = path;
        this.fileOffsetBytes = fileOffsetBytes;
        this.writable = writable;
        this.ownsArena = shared == null;
        this.arena = ownsArena ? Arena.ofShared() : shared;
        this.segment = Syscalls.sized(address, lengthBytes, arena, MappedRegion::unmap);
    }

    /** The mapping; byte 0 is file offset {@link #fileOffsetBytes()}. Read-only for a read-only file. */
    public MemorySegment segment() {
        return writable ? segment : segment.asReadOnly();
    }

    public long fileOffsetBytes() {
        return fileOffsetBytes;
    }

    public long lengthBytes() {
        return segment.byteSize();
    }

    /** msync(MS_SYNC) of {@code [offset, offset + length)} of the mapping (rounded out to pages). */
    public void sync(long offsetBytes, long lengthBytes) throws ErrnoException {
        Objects.checkFromIndexSize(offsetBytes, lengthBytes, segment.byteSize());
        long start = offsetBytes - offsetBytes % PAGE_BYTES;
        long end = offsetBytes + lengthBytes;
        try (Arena call = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(call);
            int rc = Syscalls.msync(capture, segment.asSlice(start), end - start, LinuxConstants.MS_SYNC);
            if (rc < 0) {
                throw new ErrnoException("msync", Syscalls.errno(capture), path, fileOffsetBytes + start, end - start);
            }
        }
    }

    /**
     * Asks the kernel to read the mapping's pages now ({@code madvise(MADV_WILLNEED)}), so that the
     * first store into them later does not wait for the disk. A hint: a refusal changes nothing.
     */
    public void willNeed() {
        try (Arena call = Arena.ofConfined()) {
            Syscalls.madvise(Syscalls.allocateCapture(call), segment, segment.byteSize(), LinuxConstants.MADV_WILLNEED);
        }
    }

    /** msync of the whole mapping. */
    public void sync() throws ErrnoException {
        sync(0, segment.byteSize());
    }

    /**
     * Unmaps a region with an arena of its own; one in a shared arena stays mapped until that
     * arena is closed. Idempotent. Unsynced stores still reach the file eventually (shared mapping).
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true) && ownsArena) {
            arena.close();
        }
    }

    private static void unmap(MemorySegment mapping) {
        try (Arena call = Arena.ofConfined()) {
            // munmap of a range we mapped fails only on a binding bug; nothing to recover.
            Syscalls.munmap(Syscalls.allocateCapture(call), mapping, mapping.byteSize());
        }
    }
}
