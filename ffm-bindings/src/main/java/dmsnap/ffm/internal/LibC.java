package dmsnap.ffm.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dmsnap.jextract.linux.Linux;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * Downcall handles for the libc functions dmsnap uses, linked once. Every fallible function is
 * linked with {@code captureCallState("errno")}: the generated bindings do not capture errno,
 * and reading it after the call is unreliable. Descriptors come from the generated bindings
 * except for the variadic {@code open} and {@code ioctl}, whose variadic argument is spelled
 * here.
 */
final class LibC {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");

    /** {@code int open(const char *path, int flags, ... mode_t mode)}. */
    static final MethodHandle OPEN = link(
            "open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            ERRNO,
            Linker.Option.firstVariadicArg(2));

    static final MethodHandle CLOSE = link("close", Linux.close$descriptor(), ERRNO);
    static final MethodHandle PREAD = link("pread", Linux.pread$descriptor(), ERRNO);
    static final MethodHandle PWRITE = link("pwrite", Linux.pwrite$descriptor(), ERRNO);
    static final MethodHandle PREADV2 = link("preadv2", Linux.preadv2$descriptor(), ERRNO);
    static final MethodHandle FSYNC = link("fsync", Linux.fsync$descriptor(), ERRNO);
    static final MethodHandle FDATASYNC = link("fdatasync", Linux.fdatasync$descriptor(), ERRNO);
    static final MethodHandle FALLOCATE = link("fallocate", Linux.fallocate$descriptor(), ERRNO);
    static final MethodHandle LSEEK = link("lseek", Linux.lseek$descriptor(), ERRNO);
    static final MethodHandle FTRUNCATE = link("ftruncate", Linux.ftruncate$descriptor(), ERRNO);
    static final MethodHandle FLOCK = link("flock", Linux.flock$descriptor(), ERRNO);
    static final MethodHandle STATX = link("statx", Linux.statx$descriptor(), ERRNO);
    /** {@code int ioctl(int fd, unsigned long request, ... void *arg)}: every ioctl dmsnap uses takes a pointer. */
    static final MethodHandle IOCTL_PTR = link(
            "ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
            ERRNO,
            Linker.Option.firstVariadicArg(2));

    static final MethodHandle MMAP = link("mmap", Linux.mmap$descriptor(), ERRNO);
    static final MethodHandle MSYNC = link("msync", Linux.msync$descriptor(), ERRNO);
    static final MethodHandle MUNMAP = link("munmap", Linux.munmap$descriptor(), ERRNO);
    static final MethodHandle MADVISE = link("madvise", Linux.madvise$descriptor(), ERRNO);
    /** strerror is only called while {@code Errno} initialises, from one thread. */
    static final MethodHandle STRERROR = link("strerror", Linux.strerror$descriptor());

    private LibC() {}

    private static MethodHandle link(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment symbol =
                LIBC.find(name).orElseThrow(() -> new UnsupportedOperationException("libc has no symbol " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }
}
