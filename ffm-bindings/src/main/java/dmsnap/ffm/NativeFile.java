package dmsnap.ffm;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dmsnap.ffm.internal.LinuxConstants;
import dmsnap.ffm.internal.Syscalls;
import dmsnap.jextract.linux.iovec;
import dmsnap.jextract.linux.statx;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.nio.file.Path;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

/**
 * An open file or block device. Positional I/O into native {@link MemorySegment}s loops on short
 * transfers and retries {@code EINTR}; every failure is one {@link ErrnoException} naming the call,
 * the errno, the path, offset and length.
 *
 * <p>Opened with {@link OpenFlag#DIRECT}, the file checks offset, length and buffer address
 * against its O_DIRECT alignment before the syscall (block devices: the logical block size;
 * files: {@code STATX_DIOALIGN}, or 4096 when the kernel does not say) and refuses misaligned
 * requests with an {@link IllegalArgumentException} naming the alignment needed.
 *
 * <p>Thread safety: all methods may be called concurrently. {@link #close()} is idempotent; it
 * waits for calls in progress, so a descriptor number is never reused under a running call.
 */
public final class NativeFile implements AutoCloseable {
    private static final int CREATE_MODE = 0644;
    private static final int DEFAULT_DIRECT_ALIGNMENT = 4096;

    /** What {@link #readIfCached} returns when the read would have to wait. */
    public static final long WOULD_BLOCK = -1;

    private final Path path;
    private final Set<OpenFlag> flags;
    private final int fd;
    private final FileType type;
    private final int memAlign;
    private final int offsetAlign;
    /** Calls in progress; close() parks until they have returned. */
    private final InFlight inFlight;
    /** The file system said EOPNOTSUPP to RWF_NOWAIT: {@link #readIfCached} no longer asks. */
    private volatile boolean nowaitUnsupported;

    private NativeFile(Path path, Set<OpenFlag> flags, int fd) throws ErrnoException {
        this.path = path;
        this.flags = flags;
        this.fd = fd;
        this.inFlight = new InFlight(path.toString());
        FileStat stat = statFd();
        this.type = stat.type();
        if (flags.contains(OpenFlag.DIRECT)) {
            if (type == FileType.BLOCK_DEVICE) {
                int lbs = (int) ioctlValue("BLKSSZGET", LinuxConstants.BLKSSZGET, false);
                this.memAlign = lbs;
                this.offsetAlign = lbs;
            } else {
                this.memAlign = stat.dioMemAlign() > 0 ? stat.dioMemAlign() : DEFAULT_DIRECT_ALIGNMENT;
                this.offsetAlign = stat.dioOffsetAlign() > 0 ? stat.dioOffsetAlign() : DEFAULT_DIRECT_ALIGNMENT;
            }
        } else {
            this.memAlign = 1;
            this.offsetAlign = 1;
        }
    }

    /** Opens {@code path}; exactly one of READ_ONLY and READ_WRITE must be given. */
    public static NativeFile open(Path path, OpenFlag... flags) throws ErrnoException {
        return open(path, flags.length == 0 ? EnumSet.noneOf(OpenFlag.class) : EnumSet.of(flags[0], flags));
    }

    public static NativeFile open(Path path, Set<OpenFlag> flags) throws ErrnoException {
        Objects.requireNonNull(path, "path");
        return open(path, path.toString(), flags, null);
    }

    /**
     * An {@link OpenFlag#PATH} descriptor of {@code path}: what it is ({@link #stat}, {@link
     * #type}) without opening it for I/O, so a FIFO or a device with a slow open method cannot
     * block the caller; then {@link #reopen} opens exactly that file.
     */
    public static NativeFile locate(Path path) throws ErrnoException {
        return open(path, OpenFlag.PATH);
    }

    /**
     * The same, but a symbolic link as the last component is located itself ({@link
     * FileType#SYMBOLIC_LINK}), not followed: a caller that resolved {@code path} already sees a
     * link swapped in since, instead of the file it points to.
     */
    public static NativeFile locateNoFollow(Path path) throws ErrnoException {
        return open(path, java.util.EnumSet.of(OpenFlag.PATH, OpenFlag.NO_FOLLOW));
    }

    /**
     * Opens the very file this descriptor refers to again, with {@code flags}, through {@code
     * /proc/self/fd}: a path renamed or replaced since this one was opened cannot substitute
     * another file. Errors name this file's path.
     */
    public NativeFile reopen(Set<OpenFlag> flags) throws ErrnoException {
        acquire();
        try {
            return open(path, "/proc/self/fd/" + fd, flags, "reopening through /proc/self/fd");
        } finally {
            release();
        }
    }

    private static NativeFile open(Path path, String target, Set<OpenFlag> flags, String how) throws ErrnoException {
        Set<OpenFlag> copy = flags.isEmpty() ? EnumSet.noneOf(OpenFlag.class) : EnumSet.copyOf(flags);
        int nativeFlags = OpenFlag.toNative(copy);
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment cPath = arena.allocateFrom(target);
            do {
                fd = Syscalls.open(capture, cPath, nativeFlags, CREATE_MODE);
            } while (fd < 0 && Syscalls.errno(capture) == Errno.EINTR.value());
            if (fd < 0) {
                int errno = Syscalls.errno(capture);
                throw how == null
                        ? new ErrnoException("open", errno, path, -1, -1)
                        : new ErrnoException("open", errno, path, -1, -1, how);
            }
        }
        boolean ok = false;
        try {
            NativeFile file = new NativeFile(path, Collections.unmodifiableSet(copy), fd);
            ok = true;
            return file;
        } finally {
            if (!ok) {
                closeQuietly(fd);
            }
        }
    }

    public Path path() {
        return path;
    }

    public Set<OpenFlag> flags() {
        return flags;
    }

    public FileType type() {
        return type;
    }

    public boolean isDirect() {
        return flags.contains(OpenFlag.DIRECT);
    }

    /** Buffer address alignment O_DIRECT needs here (1 without O_DIRECT). */
    public int directMemoryAlignment() {
        return memAlign;
    }

    /** Offset and length alignment O_DIRECT needs here (1 without O_DIRECT). */
    public int directOffsetAlignment() {
        return offsetAlign;
    }

    /**
     * Reads {@code dst.byteSize()} bytes at {@code offsetBytes} into {@code dst}.
     *
     * @return the bytes read: all of them, or fewer only when the end of the file was reached
     */
    public long read(long offsetBytes, MemorySegment dst) throws ErrnoException {
        checkTransfer("pread", offsetBytes, dst);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            long done = 0;
            long total = dst.byteSize();
            while (done < total) {
                long n = Syscalls.pread(capture, fd, dst.asSlice(done), total - done, offsetBytes + done);
                if (n < 0) {
                    int errno = Syscalls.errno(capture);
                    if (errno == Errno.EINTR.value()) {
                        continue;
                    }
                    throw new ErrnoException("pread", errno, path, offsetBytes + done, total - done);
                }
                if (n == 0) {
                    break; // end of file
                }
                done += n;
            }
            return done;
        } finally {
            Reference.reachabilityFence(dst);
            release();
        }
    }

    /**
     * Reads {@code dst.byteSize()} bytes at {@code offsetBytes} only if the page cache holds all
     * of them: one {@code preadv2} with {@code RWF_NOWAIT}, which never waits for the device (it may
     * start readahead of what is missing, as a normal read would).
     *
     * @return {@code dst.byteSize()}, or {@link #WOULD_BLOCK} when some of it is not cached (EAGAIN,
     *     or a short read: a part was, or the end of the file came), when the file system cannot
     *     read without waiting (EOPNOTSUPP, remembered: this file never asks again), when the file
     *     is O_DIRECT (no page cache to look in) or the call was interrupted. The caller then reads
     *     the normal way; {@code dst} may hold part of the data meanwhile.
     */
    public long readIfCached(long offsetBytes, MemorySegment dst) throws ErrnoException {
        checkTransfer("preadv2", offsetBytes, dst);
        if (isDirect() || nowaitUnsupported) {
            return WOULD_BLOCK;
        }
        long total = dst.byteSize();
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment iov = iovec.allocate(arena);
            iovec.iov_base(iov, dst);
            iovec.iov_len(iov, total);
            long n = Syscalls.preadv2(capture, fd, iov, 1, offsetBytes, LinuxConstants.RWF_NOWAIT);
            if (n == total) {
                return total;
            }
            if (n >= 0) {
                return WOULD_BLOCK;
            }
            int errno = Syscalls.errno(capture);
            if (errno == Errno.EOPNOTSUPP.value()) {
                nowaitUnsupported = true;
                return WOULD_BLOCK;
            }
            if (errno == Errno.EAGAIN.value() || errno == Errno.EINTR.value()) {
                return WOULD_BLOCK;
            }
            throw new ErrnoException("preadv2", errno, path, offsetBytes, total);
        } finally {
            Reference.reachabilityFence(dst);
            release();
        }
    }

    /** Writes all of {@code src} at {@code offsetBytes}. */
    public void write(long offsetBytes, MemorySegment src) throws ErrnoException {
        checkTransfer("pwrite", offsetBytes, src);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            long done = 0;
            long total = src.byteSize();
            while (done < total) {
                long n = Syscalls.pwrite(capture, fd, src.asSlice(done), total - done, offsetBytes + done);
                if (n < 0) {
                    int errno = Syscalls.errno(capture);
                    if (errno == Errno.EINTR.value()) {
                        continue;
                    }
                    throw new ErrnoException("pwrite", errno, path, offsetBytes + done, total - done);
                }
                if (n == 0) {
                    // pwrite returning 0 for a non-zero count means no progress is possible.
                    throw new ErrnoException(
                            "pwrite", Errno.EIO.value(), path, offsetBytes + done, total - done, "no progress");
                }
                done += n;
            }
        } finally {
            Reference.reachabilityFence(src);
            release();
        }
    }

    /** Makes data and metadata durable (and flushes the device's volatile cache). */
    public void fsync() throws ErrnoException {
        syncCall("fsync", false);
    }

    /** Makes data (and the metadata needed to read it) durable. */
    public void fdatasync() throws ErrnoException {
        syncCall("fdatasync", true);
    }

    private void syncCall(String name, boolean dataOnly) throws ErrnoException {
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            int rc;
            do {
                rc = dataOnly ? Syscalls.fdatasync(capture, fd) : Syscalls.fsync(capture, fd);
            } while (rc < 0 && Syscalls.errno(capture) == Errno.EINTR.value());
            if (rc < 0) {
                throw new ErrnoException(name, Syscalls.errno(capture), path, -1, -1);
            }
        } finally {
            release();
        }
    }

    /** {@code fallocate(mode, offset, length)}; a file system without support fails with EOPNOTSUPP. */
    public void fallocate(Fallocate mode, long offsetBytes, long lengthBytes) throws ErrnoException {
        checkRange("fallocate", offsetBytes, lengthBytes);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            int rc;
            do {
                rc = Syscalls.fallocate(capture, fd, mode.toNative(), offsetBytes, lengthBytes);
            } while (rc < 0 && Syscalls.errno(capture) == Errno.EINTR.value());
            if (rc < 0) {
                throw new ErrnoException("fallocate", Syscalls.errno(capture), path, offsetBytes, lengthBytes);
            }
        } finally {
            release();
        }
    }

    /**
     * {@code lseek(offset, SEEK_DATA)}: the first offset at or after {@code offsetBytes} where the
     * file has data, or -1 when only a hole follows (ENXIO). A file system that does not track
     * holes reports data everywhere.
     */
    public long nextData(long offsetBytes) throws ErrnoException {
        return seek("lseek(SEEK_DATA)", offsetBytes, LinuxConstants.SEEK_DATA);
    }

    /**
     * {@code lseek(offset, SEEK_HOLE)}: the first offset at or after {@code offsetBytes} that is
     * in a hole (the end of the file counts as one), or -1 when {@code offsetBytes} is at or past
     * the end (ENXIO).
     */
    public long nextHole(long offsetBytes) throws ErrnoException {
        return seek("lseek(SEEK_HOLE)", offsetBytes, LinuxConstants.SEEK_HOLE);
    }

    private long seek(String name, long offsetBytes, int whence) throws ErrnoException {
        if (offsetBytes < 0) {
            throw new IllegalArgumentException(name + ": negative offset " + offsetBytes);
        }
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            long at = Syscalls.lseek(capture, fd, offsetBytes, whence);
            if (at >= 0) {
                return at;
            }
            int errno = Syscalls.errno(capture);
            if (errno == Errno.ENXIO.value()) {
                return -1;
            }
            throw new ErrnoException(name, errno, path, offsetBytes, -1);
        } finally {
            release();
        }
    }

    /** {@code ftruncate(length)}: the file's size becomes {@code sizeBytes}, growing (with a hole) or shrinking it. */
    public void truncate(long sizeBytes) throws ErrnoException {
        checkRange("ftruncate", sizeBytes, 0);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            int rc;
            do {
                rc = Syscalls.ftruncate(capture, fd, sizeBytes);
            } while (rc < 0 && Syscalls.errno(capture) == Errno.EINTR.value());
            if (rc < 0) {
                throw new ErrnoException("ftruncate", Syscalls.errno(capture), path, sizeBytes, -1);
            }
        } finally {
            release();
        }
    }

    /**
     * Takes an advisory {@code flock} without waiting.
     *
     * @return false when another open file description holds a conflicting lock
     */
    public boolean tryLock(boolean exclusive) throws ErrnoException {
        int op = (exclusive ? LinuxConstants.LOCK_EX : LinuxConstants.LOCK_SH) | LinuxConstants.LOCK_NB;
        int errno = flock(op);
        if (errno == 0) {
            return true;
        }
        if (errno == Errno.EAGAIN.value()) {
            return false;
        }
        throw new ErrnoException("flock", errno, path, -1, -1);
    }

    /** Releases a lock taken with {@link #tryLock}. Closing the file releases it too. */
    public void unlock() throws ErrnoException {
        int errno = flock(LinuxConstants.LOCK_UN);
        if (errno != 0) {
            throw new ErrnoException("flock", errno, path, -1, -1);
        }
    }

    private int flock(int op) {
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            int rc;
            do {
                rc = Syscalls.flock(capture, fd, op);
            } while (rc < 0 && Syscalls.errno(capture) == Errno.EINTR.value());
            return rc < 0 ? Syscalls.errno(capture) : 0;
        } finally {
            release();
        }
    }

    /** statx of the open descriptor, asking for the basic fields and the O_DIRECT alignment. */
    public FileStat stat() throws ErrnoException {
        acquire();
        try {
            return statFd();
        } finally {
            release();
        }
    }

    private FileStat statFd() throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment buf = arena.allocate(statx.layout());
            int rc = Syscalls.statx(
                    capture,
                    fd,
                    arena.allocateFrom(""),
                    LinuxConstants.AT_EMPTY_PATH,
                    LinuxConstants.STATX_BASIC_STATS | LinuxConstants.STATX_DIOALIGN,
                    buf);
            if (rc < 0) {
                throw new ErrnoException("statx", Syscalls.errno(capture), path, -1, -1);
            }
            int mode = Short.toUnsignedInt(statx.stx_mode(buf)) & LinuxConstants.S_IFMT;
            FileType type = mode == LinuxConstants.S_IFREG
                    ? FileType.REGULAR_FILE
                    : mode == LinuxConstants.S_IFBLK
                            ? FileType.BLOCK_DEVICE
                            : mode == LinuxConstants.S_IFDIR
                                    ? FileType.DIRECTORY
                                    : mode == LinuxConstants.S_IFCHR
                                            ? FileType.CHARACTER_DEVICE
                                            : mode == LinuxConstants.S_IFIFO
                                                    ? FileType.FIFO
                                                    : mode == LinuxConstants.S_IFSOCK
                                                            ? FileType.SOCKET
                                                            : mode == LinuxConstants.S_IFLNK
                                                                    ? FileType.SYMBOLIC_LINK
                                                                    : FileType.OTHER;
            boolean dio = (statx.stx_mask(buf) & LinuxConstants.STATX_DIOALIGN) != 0;
            boolean dev = type == FileType.BLOCK_DEVICE || type == FileType.CHARACTER_DEVICE;
            return new FileStat(
                    type,
                    statx.stx_size(buf),
                    statx.stx_dev_major(buf),
                    statx.stx_dev_minor(buf),
                    statx.stx_ino(buf),
                    dev ? statx.stx_rdev_major(buf) : 0,
                    dev ? statx.stx_rdev_minor(buf) : 0,
                    statx.stx_blksize(buf),
                    dio ? statx.stx_dio_mem_align(buf) : 0,
                    dio ? statx.stx_dio_offset_align(buf) : 0,
                    statx.stx_blocks(buf) * 512);
        }
    }

    /** An ioctl whose argument is a pointer to an int or a u64 result. */
    long ioctlValue(String name, long request, boolean u64) throws ErrnoException {
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment out = arena.allocate(JAVA_LONG);
            int rc = Syscalls.ioctl(capture, fd, request, out);
            if (rc < 0) {
                throw new ErrnoException("ioctl " + name, Syscalls.errno(capture), path, -1, -1);
            }
            return u64 ? out.get(JAVA_LONG, 0) : out.get(JAVA_INT, 0);
        } finally {
            release();
        }
    }

    /** An ioctl whose argument is {@code uint64_t range[2] = {offset, length}}. */
    void ioctlRange(String name, long request, long offsetBytes, long lengthBytes) throws ErrnoException {
        checkRange(name, offsetBytes, lengthBytes);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment range = arena.allocate(JAVA_LONG, 2);
            range.setAtIndex(JAVA_LONG, 0, offsetBytes);
            range.setAtIndex(JAVA_LONG, 1, lengthBytes);
            int rc = Syscalls.ioctl(capture, fd, request, range);
            if (rc < 0) {
                throw new ErrnoException("ioctl " + name, Syscalls.errno(capture), path, offsetBytes, lengthBytes);
            }
        } finally {
            release();
        }
    }

    /**
     * Maps {@code [offsetBytes, offsetBytes + lengthBytes)} shared and read-write (or read-only
     * for a read-only file). The offset must be a multiple of the page size. The mapping lives
     * until the returned region is closed; closing this file does not unmap it.
     */
    public MappedRegion map(long offsetBytes, long lengthBytes) throws ErrnoException {
        return map(offsetBytes, lengthBytes, null);
    }

    /**
     * As {@link #map(long, long)}, but the mapping lives in {@code shared} (a shared arena the
     * caller owns): it is unmapped when that arena is closed, not when the region is. Closing a
     * shared arena stops every Java thread for a handshake; regions that come and go often
     * (exception areas, one per few hundred exceptions) share one to pay that once per many.
     */
    public MappedRegion map(long offsetBytes, long lengthBytes, Arena shared) throws ErrnoException {
        checkRange("mmap", offsetBytes, lengthBytes);
        if (lengthBytes == 0) {
            throw new IllegalArgumentException("mmap(path=" + path + "): length must be positive");
        }
        long page = MappedRegion.PAGE_BYTES;
        if (offsetBytes % page != 0) {
            throw new IllegalArgumentException("mmap(path=" + path + ", offset=" + offsetBytes
                    + "): offset must be a multiple of the page size (" + page + " bytes)");
        }
        boolean writable = flags.contains(OpenFlag.READ_WRITE);
        int prot = LinuxConstants.PROT_READ | (writable ? LinuxConstants.PROT_WRITE : 0);
        acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            MemorySegment address =
                    Syscalls.mmap(capture, lengthBytes, prot, LinuxConstants.MAP_SHARED, fd, offsetBytes);
            if (Syscalls.mapFailed(address)) {
                throw new ErrnoException("mmap", Syscalls.errno(capture), path, offsetBytes, lengthBytes);
            }
            // Metadata is touched a chunk at a time. Without this hint the first touch of a page
            // reads read_ahead_kb around it (8 MiB on a virtio disk): the data chunks next to an
            // exception area, which O_DIRECT writes then throw out of the page cache again. A hint
            // only: should the kernel refuse it, the mapping works as before.
            Syscalls.madvise(capture, address, lengthBytes, LinuxConstants.MADV_RANDOM);
            return new MappedRegion(path, address, offsetBytes, lengthBytes, writable, shared);
        } finally {
            release();
        }
    }

    /**
     * Closes the descriptor once every call in progress has returned. Idempotent; later calls
     * fail with {@link IllegalStateException}.
     */
    @Override
    public void close() throws ErrnoException {
        if (!inFlight.close()) {
            return; // closed or closing already
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Syscalls.allocateCapture(arena);
            // close() is not retried on EINTR: on Linux the descriptor is released regardless.
            if (Syscalls.close(capture, fd) < 0 && Syscalls.errno(capture) != Errno.EINTR.value()) {
                throw new ErrnoException("close", Syscalls.errno(capture), path, -1, -1);
            }
        }
    }

    public boolean isOpen() {
        return inFlight.isOpen();
    }

    @Override
    public String toString() {
        return "NativeFile[" + path + ", " + type.describe() + ", " + flags + "]";
    }

    private void acquire() {
        inFlight.acquire();
    }

    private void release() {
        inFlight.release();
    }

    private void checkTransfer(String call, long offsetBytes, MemorySegment segment) {
        Objects.requireNonNull(segment, "segment");
        if (!segment.isNative()) {
            throw new IllegalArgumentException(call + "(path=" + path + "): the buffer must be a native segment");
        }
        long length = segment.byteSize();
        checkRange(call, offsetBytes, length);
        if (offsetAlign > 1
                && (offsetBytes % offsetAlign != 0 || length % offsetAlign != 0 || segment.address() % memAlign != 0)) {
            throw new IllegalArgumentException(ErrnoException.context(call, path, offsetBytes, length)
                    + ": O_DIRECT needs offset and length aligned to " + offsetAlign
                    + " bytes and the buffer address to " + memAlign + " bytes (buffer address % " + memAlign
                    + " = " + segment.address() % memAlign + ")");
        }
    }

    private void checkRange(String call, long offsetBytes, long lengthBytes) {
        if (offsetBytes < 0 || lengthBytes < 0 || offsetBytes + lengthBytes < offsetBytes) {
            throw new IllegalArgumentException(ErrnoException.context(call, path, offsetBytes, lengthBytes)
                    + ": offset and length must be non-negative and not overflow");
        }
    }

    private static void closeQuietly(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            // Only reached when setting up a freshly opened descriptor failed; that error is reported.
            Syscalls.close(Syscalls.allocateCapture(arena), fd);
        }
    }
}
