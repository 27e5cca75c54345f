package dmsnap.ffm.internal;

import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;

/**
 * Invokes the {@link LibC} handles. Each method takes the errno capture segment as its first
 * argument (allocate it with {@link #allocateCapture} from a confined arena or the caller's
 * allocator, never share one between threads) and returns the raw result; on -1 the caller reads
 * {@link #errno(MemorySegment)}. A {@code Throwable} from {@code invokeExact} means the binding
 * itself is wrong, so it becomes an {@link AssertionError}.
 */
public final class Syscalls {
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private Syscalls() {}

    public static MemorySegment allocateCapture(SegmentAllocator allocator) {
        return allocator.allocate(CAPTURE);
    }

    public static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    public static int open(MemorySegment capture, MemorySegment path, int flags, int mode) {
        try {
            return (int) LibC.Open.H.invokeExact(capture, path, flags, mode);
        } catch (Throwable t) {
            throw bindingBug("open", t);
        }
    }

    public static int close(MemorySegment capture, int fd) {
        try {
            return (int) LibC.Close.H.invokeExact(capture, fd);
        } catch (Throwable t) {
            throw bindingBug("close", t);
        }
    }

    public static long pread(MemorySegment capture, int fd, MemorySegment buf, long count, long offset) {
        try {
            return (long) LibC.Pread.H.invokeExact(capture, fd, buf, count, offset);
        } catch (Throwable t) {
            throw bindingBug("pread", t);
        }
    }

    public static long pwrite(MemorySegment capture, int fd, MemorySegment buf, long count, long offset) {
        try {
            return (long) LibC.Pwrite.H.invokeExact(capture, fd, buf, count, offset);
        } catch (Throwable t) {
            throw bindingBug("pwrite", t);
        }
    }

    /** {@code preadv2(fd, iov, iovcnt, offset, flags)}; {@code iov} is an array of {@code struct iovec}. */
    public static long preadv2(MemorySegment capture, int fd, MemorySegment iov, int iovcnt, long offset, int flags) {
        try {
            return (long) LibC.Preadv2.H.invokeExact(capture, fd, iov, iovcnt, offset, flags);
        } catch (Throwable t) {
            throw bindingBug("preadv2", t);
        }
    }

    public static int fsync(MemorySegment capture, int fd) {
        try {
            return (int) LibC.Fsync.H.invokeExact(capture, fd);
        } catch (Throwable t) {
            throw bindingBug("fsync", t);
        }
    }

    public static int fdatasync(MemorySegment capture, int fd) {
        try {
            return (int) LibC.Fdatasync.H.invokeExact(capture, fd);
        } catch (Throwable t) {
            throw bindingBug("fdatasync", t);
        }
    }

    public static int fallocate(MemorySegment capture, int fd, int mode, long offset, long length) {
        try {
            return (int) LibC.Fallocate.H.invokeExact(capture, fd, mode, offset, length);
        } catch (Throwable t) {
            throw bindingBug("fallocate", t);
        }
    }

    public static long lseek(MemorySegment capture, int fd, long offset, int whence) {
        try {
            return (long) LibC.Lseek.H.invokeExact(capture, fd, offset, whence);
        } catch (Throwable t) {
            throw bindingBug("lseek", t);
        }
    }

    public static int ftruncate(MemorySegment capture, int fd, long length) {
        try {
            return (int) LibC.Ftruncate.H.invokeExact(capture, fd, length);
        } catch (Throwable t) {
            throw bindingBug("ftruncate", t);
        }
    }

    public static int flock(MemorySegment capture, int fd, int operation) {
        try {
            return (int) LibC.Flock.H.invokeExact(capture, fd, operation);
        } catch (Throwable t) {
            throw bindingBug("flock", t);
        }
    }

    public static int statx(
            MemorySegment capture, int dirfd, MemorySegment path, int flags, int mask, MemorySegment statx) {
        try {
            return (int) LibC.Statx.H.invokeExact(capture, dirfd, path, flags, mask, statx);
        } catch (Throwable t) {
            throw bindingBug("statx", t);
        }
    }

    public static int ioctl(MemorySegment capture, int fd, long request, MemorySegment arg) {
        try {
            return (int) LibC.IoctlPtr.H.invokeExact(capture, fd, request, arg);
        } catch (Throwable t) {
            throw bindingBug("ioctl", t);
        }
    }

    public static MemorySegment mmap(MemorySegment capture, long length, int prot, int flags, int fd, long offset) {
        try {
            return (MemorySegment)
                    LibC.Mmap.H.invokeExact(capture, MemorySegment.NULL, length, prot, flags, fd, offset);
        } catch (Throwable t) {
            throw bindingBug("mmap", t);
        }
    }

    public static int msync(MemorySegment capture, MemorySegment address, long length, int flags) {
        try {
            return (int) LibC.Msync.H.invokeExact(capture, address, length, flags);
        } catch (Throwable t) {
            throw bindingBug("msync", t);
        }
    }

    public static int madvise(MemorySegment capture, MemorySegment address, long length, int advice) {
        try {
            return (int) LibC.Madvise.H.invokeExact(capture, address, length, advice);
        } catch (Throwable t) {
            throw bindingBug("madvise", t);
        }
    }

    public static int munmap(MemorySegment capture, MemorySegment address, long length) {
        try {
            return (int) LibC.Munmap.H.invokeExact(capture, address, length);
        } catch (Throwable t) {
            throw bindingBug("munmap", t);
        }
    }

    /** The C library's text for an errno value ("Input/output error"). */
    public static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) LibC.Strerror.H.invokeExact(errno);
            return text.reinterpret(Integer.MAX_VALUE).getString(0);
        } catch (Throwable t) {
            throw bindingBug("strerror", t);
        }
    }

    /** MAP_FAILED is {@code (void *) -1}. */
    public static boolean mapFailed(MemorySegment address) {
        return address.address() == -1L;
    }

    /** Gives a raw mapping its length, with an action run when {@code arena} closes. */
    public static MemorySegment sized(
            MemorySegment address,
            long length,
            java.lang.foreign.Arena arena,
            java.util.function.Consumer<MemorySegment> cleanup) {
        return address.reinterpret(length, arena, cleanup);
    }

    private static AssertionError bindingBug(String function, Throwable t) {
        return new AssertionError("native binding for " + function + " is broken", t);
    }
}
