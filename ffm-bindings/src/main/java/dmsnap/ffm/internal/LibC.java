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
 * Downcall handles for the libc functions dmsnap uses, each linked once, on first use: one holder
 * class per function, so a start links only what it calls (linking costs about 10 ms a function
 * on a cold JVM, and the AOT cache does not keep it) while a call still sees a constant handle.
 * Every fallible function is linked with {@code captureCallState("errno")}: the generated
 * bindings do not capture errno, and reading it after the call is unreliable. Descriptors come
 * from the generated bindings except for the variadic {@code open} and {@code ioctl}, whose
 * variadic argument is spelled here.
 */
final class LibC {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");

    /** {@code int open(const char *path, int flags, ... mode_t mode)}. */
    static final class Open {
        static final MethodHandle H = link(
                "open",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
                ERRNO,
                Linker.Option.firstVariadicArg(2));
    }

    static final class Close {
        static final MethodHandle H = link("close", Linux.close$descriptor(), ERRNO);
    }

    static final class Pread {
        static final MethodHandle H = link("pread", Linux.pread$descriptor(), ERRNO);
    }

    static final class Pwrite {
        static final MethodHandle H = link("pwrite", Linux.pwrite$descriptor(), ERRNO);
    }

    static final class Preadv2 {
        static final MethodHandle H = link("preadv2", Linux.preadv2$descriptor(), ERRNO);
    }

    static final class Fsync {
        static final MethodHandle H = link("fsync", Linux.fsync$descriptor(), ERRNO);
    }

    static final class Fdatasync {
        static final MethodHandle H = link("fdatasync", Linux.fdatasync$descriptor(), ERRNO);
    }

    static final class Fallocate {
        static final MethodHandle H = link("fallocate", Linux.fallocate$descriptor(), ERRNO);
    }

    static final class Lseek {
        static final MethodHandle H = link("lseek", Linux.lseek$descriptor(), ERRNO);
    }

    static final class Ftruncate {
        static final MethodHandle H = link("ftruncate", Linux.ftruncate$descriptor(), ERRNO);
    }

    static final class Flock {
        static final MethodHandle H = link("flock", Linux.flock$descriptor(), ERRNO);
    }

    static final class Statx {
        static final MethodHandle H = link("statx", Linux.statx$descriptor(), ERRNO);
    }

    /** {@code int ioctl(int fd, unsigned long request, ... void *arg)}: every ioctl dmsnap uses takes a pointer. */
    static final class IoctlPtr {
        static final MethodHandle H = link(
                "ioctl",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS),
                ERRNO,
                Linker.Option.firstVariadicArg(2));
    }

    static final class Mmap {
        static final MethodHandle H = link("mmap", Linux.mmap$descriptor(), ERRNO);
    }

    static final class Msync {
        static final MethodHandle H = link("msync", Linux.msync$descriptor(), ERRNO);
    }

    static final class Munmap {
        static final MethodHandle H = link("munmap", Linux.munmap$descriptor(), ERRNO);
    }

    static final class Madvise {
        static final MethodHandle H = link("madvise", Linux.madvise$descriptor(), ERRNO);
    }

    /** strerror is only called while {@code Errno} initialises, from one thread. */
    static final class Strerror {
        static final MethodHandle H = link("strerror", Linux.strerror$descriptor());
    }

    private LibC() {}

    private static MethodHandle link(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment symbol =
                LIBC.find(name).orElseThrow(() -> new UnsupportedOperationException("libc has no symbol " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }
}
