package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;
import dmsnap.ffm.internal.Syscalls;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Memory for {@code O_DIRECT} buffers: an anonymous private mapping aligned to 2 MiB that the
 * kernel is asked to back with transparent huge pages ({@code madvise(MADV_HUGEPAGE)}, honoured
 * when THP is {@code always} or {@code madvise}). A huge page is physically contiguous, so a
 * buffer inside one reaches the block layer as one segment; a buffer of scattered 4 KiB pages is
 * 256 segments per MiB (a virtio disk here takes 254 per request). Measured on this VM
 * (bench/RESULTS.md): 1 MiB O_DIRECT reads from ext4 took a fifth of the time into a huge page
 * that they took into a long-lived malloc'd buffer. Where THP is off the memory is ordinary
 * pages: aligned, correct, only slower ({@link #hugePages()} is false).
 *
 * <p>The pages are touched at creation, so the huge pages are taken then and not on the I/O
 * path. Lifetime: one owner; {@link #close()} unmaps, and the segments are unusable afterwards.
 */
public final class IoMemory implements AutoCloseable {
    /** The transparent huge page size of x86-64 and arm64 with 4 KiB pages. */
    public static final long HUGE_PAGE_BYTES = 2L << 20;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;
    private final boolean hugePages;
    private final AtomicBoolean closed = new AtomicBoolean();

    private IoMemory(MemorySegment address, long bytes, boolean hugePages) {
        this.segment = Syscalls.sized(address, bytes, arena, IoMemory::unmap);
        this.hugePages = hugePages;
    }

    /** {@code bytes} rounded up to whole huge pages, mapped, advised and touched. */
    public static IoMemory map(long bytes) throws ErrnoException {
        if (bytes <= 0) {
            throw new IllegalArgumentException("I/O memory of " + bytes + " bytes");
        }
        long length = roundUp(bytes, HUGE_PAGE_BYTES);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(call);
            // Over-map by one huge page and trim both ends, leaving exactly length at a 2 MiB boundary.
            long mapped = length + HUGE_PAGE_BYTES;
            MemorySegment base = Syscalls.mmap(
                    capture,
                    mapped,
                    LinuxConstants.PROT_READ | LinuxConstants.PROT_WRITE,
                    LinuxConstants.MAP_PRIVATE | LinuxConstants.MAP_ANONYMOUS,
                    -1,
                    0);
            if (Syscalls.mapFailed(base)) {
                throw new ErrnoException("mmap", Syscalls.errno(capture), null, -1, mapped);
            }
            long start = roundUp(base.address(), HUGE_PAGE_BYTES);
            long head = start - base.address();
            if (head > 0) {
                Syscalls.munmap(capture, base, head);
            }
            long tail = mapped - head - length;
            if (tail > 0) {
                Syscalls.munmap(capture, MemorySegment.ofAddress(start + length), tail);
            }
            MemorySegment address = MemorySegment.ofAddress(start);
            boolean huge = Syscalls.madvise(capture, address, length, LinuxConstants.MADV_HUGEPAGE) == 0;
            IoMemory memory = new IoMemory(address, length, huge);
            for (long at = 0; at < length; at += MappedRegion.PAGE_BYTES) {
                memory.segment.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte) 0); // fault the pages in now
            }
            return memory;
        }
    }

    /**
     * Memory for {@code count} buffers of {@code bytesEach} (a multiple of 4096) none of which
     * crosses a huge page boundary when it fits in one: as many per huge page as fit, larger
     * ones each starting on a boundary. {@link #slices(int, long)} gives them back.
     */
    public static IoMemory forBuffers(int count, long bytesEach) throws ErrnoException {
        checkBuffers(count, bytesEach);
        return map(offsetOf(count - 1, bytesEach) + bytesEach);
    }

    /** The {@code count} buffers of {@code bytesEach} laid out as {@link #forBuffers} sized them. */
    public List<MemorySegment> slices(int count, long bytesEach) {
        checkBuffers(count, bytesEach);
        List<MemorySegment> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            out.add(segment.asSlice(offsetOf(i, bytesEach), bytesEach));
        }
        return out;
    }

    /** Where buffer {@code i} starts: as many per huge page as fit, a larger one on a boundary. */
    private static long offsetOf(int i, long bytesEach) {
        if (bytesEach > HUGE_PAGE_BYTES) {
            return i * roundUp(bytesEach, HUGE_PAGE_BYTES);
        }
        long perPage = HUGE_PAGE_BYTES / bytesEach;
        return i / perPage * HUGE_PAGE_BYTES + i % perPage * bytesEach;
    }

    /** The whole mapping: 2 MiB aligned, a whole number of huge pages. */
    public MemorySegment segment() {
        return segment;
    }

    /** Whether the kernel took the huge page advice (false where THP is compiled out or off). */
    public boolean hugePages() {
        return hugePages;
    }

    /** Unmaps. Idempotent; no buffer of this memory may be in use. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    private static void checkBuffers(int count, long bytesEach) {
        if (count < 1 || bytesEach < MappedRegion.PAGE_BYTES || bytesEach % MappedRegion.PAGE_BYTES != 0) {
            throw new IllegalArgumentException(count + " buffers of " + bytesEach + " bytes (a multiple of 4096)");
        }
    }

    private static long roundUp(long value, long unit) {
        return (value + unit - 1) / unit * unit;
    }

    private static void unmap(MemorySegment mapping) {
        try (Arena call = Arena.ofConfined()) {
            Syscalls.munmap(Syscalls.allocateCapture(call), mapping, mapping.byteSize());
        }
    }
}
