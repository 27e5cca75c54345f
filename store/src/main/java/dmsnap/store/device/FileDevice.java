package dmsnap.store.device;

import dmsnap.ffm.BlockDevices;
import dmsnap.ffm.BlockGeometry;
import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.Fallocate;
import dmsnap.ffm.FileStat;
import dmsnap.ffm.FileType;
import dmsnap.ffm.InFlight;
import dmsnap.ffm.MappedRegion;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A regular file or a block device, opened through {@link NativeFile} (O_DIRECT unless {@link
 * Option#BUFFERED}). Nobody else may use it meanwhile: a block device is opened {@code O_EXCL}
 * (the kernel refuses a second exclusive open and a mounted device with EBUSY), a regular file
 * takes an {@code flock} (exclusive for read-write, shared for read-only), so a second user gets
 * "Device or resource busy" instead of silent sharing.
 *
 * <p>Geometry: a block device reports its own ({@code BLKGETSIZE64}/{@code BLKSSZGET}/{@code
 * BLKPBSZGET}); a file has 512-byte logical blocks, or its O_DIRECT offset alignment when that is
 * larger, and its size is rounded down to whole logical blocks.
 */
public final class FileDevice implements Device {

    /** How to open. The default is read-write with O_DIRECT. */
    public enum Option {
        READ_ONLY,
        /** Without O_DIRECT: through the page cache, no alignment rule for buffers. */
        BUFFERED
    }

    private static final int SECTOR = 512;
    private static final int ZERO_CHUNK_BYTES = 1 << 20;

    private final NativeFile file;
    private final FileStat stat;
    private final boolean blockDevice;
    private final boolean readOnly;
    private final int logicalBlockBytes;
    private final InFlight inFlight;
    /** Where metadata maps live: closed by the group, not one by one (see {@link MapArenas}). */
    private final MapArenas mapArenas = new MapArenas();

    /** The page-cache view ({@link #buffered()}), opened on first use; guarded by this object's monitor. */
    private BufferedView bufferedView;

    private volatile long sizeBytes;
    /** The largest {@link #sizeBytes} seen: I/O below it but past the current size is an I/O error. */
    private volatile long largestSizeBytes;

    private FileDevice(NativeFile file, FileStat stat, boolean readOnly) throws IOException {
        this.file = file;
        this.stat = stat;
        this.readOnly = readOnly;
        this.blockDevice = stat.type() == FileType.BLOCK_DEVICE;
        this.inFlight = new InFlight(file.path().toString());
        if (blockDevice) {
            BlockGeometry geometry = BlockDevices.geometry(file);
            this.logicalBlockBytes = geometry.logicalBlockBytes();
            this.sizeBytes = geometry.sizeBytes() - geometry.sizeBytes() % logicalBlockBytes;
        } else {
            this.logicalBlockBytes = Math.max(SECTOR, file.directOffsetAlignment());
            this.sizeBytes = stat.sizeBytes() - stat.sizeBytes() % logicalBlockBytes;
        }
        this.largestSizeBytes = sizeBytes;
    }

    /**
     * The size of {@code path} (a regular file or block device) in whole 512-byte sectors, read
     * without taking it: no exclusive open, no lock, so it works while a daemon uses it.
     */
    public static long probeSizeSectors(Path path) throws IOException {
        try (NativeFile located = NativeFile.locate(path)) {
            FileStat stat = checkType(located);
            if (stat.type() == FileType.REGULAR_FILE) {
                return stat.sizeBytes() / SECTOR;
            }
            try (NativeFile file = located.reopen(EnumSet.of(OpenFlag.READ_ONLY))) {
                return BlockDevices.geometry(file).sizeBytes() / SECTOR;
            }
        }
    }

    /** Opens {@code path} (a regular file or block device) for exclusive use. */
    public static FileDevice open(Path path, Option... options) throws IOException {
        try (NativeFile located = NativeFile.locate(path)) {
            return open(located, options);
        }
    }

    /**
     * Opens the file {@code located} refers to (see {@link NativeFile#locate}) for exclusive use.
     * Anything but a regular file or a block device is refused before it is opened for I/O: a
     * FIFO would block the open until a writer came, a character device's open may have effects.
     * The open goes through {@code located}, so a path replaced since it was located cannot
     * substitute another file.
     */
    public static FileDevice open(NativeFile located, Option... options) throws IOException {
        Set<Option> opts = options.length == 0 ? EnumSet.noneOf(Option.class) : EnumSet.of(options[0], options);
        boolean readOnly = opts.contains(Option.READ_ONLY);
        Path path = located.path();
        checkType(located);
        EnumSet<OpenFlag> flags = EnumSet.of(readOnly ? OpenFlag.READ_ONLY : OpenFlag.READ_WRITE);
        if (!opts.contains(Option.BUFFERED)) {
            flags.add(OpenFlag.DIRECT);
        }
        // O_EXCL without O_CREAT means an exclusive open for a block device and nothing for a file.
        flags.add(OpenFlag.EXCLUSIVE);
        NativeFile file;
        try {
            file = located.reopen(flags);
        } catch (ErrnoException e) {
            if (e.errno() == Errno.EBUSY) {
                throw new ErrnoException(
                        "open", e.errnoValue(), path, -1, -1, "another process holds it exclusively or it is mounted");
            }
            throw e;
        }
        boolean ok = false;
        try {
            FileStat stat = file.stat();
            if (stat.type() == FileType.REGULAR_FILE && !file.tryLock(!readOnly)) {
                throw new ErrnoException(
                        "flock",
                        Errno.EBUSY.value(),
                        path,
                        -1,
                        -1,
                        "it is already in use (another open holds its lock)");
            }
            FileDevice device = new FileDevice(file, stat, readOnly);
            ok = true;
            return device;
        } finally {
            if (!ok) {
                file.close();
            }
        }
    }

    /** The located file's statx, when it is a regular file or a block device. */
    private static FileStat checkType(NativeFile located) throws IOException {
        FileStat stat = located.stat();
        if (stat.type() != FileType.REGULAR_FILE && stat.type() != FileType.BLOCK_DEVICE) {
            throw new IOException(located.path() + " is a " + stat.type().describe()
                    + ": a device must be a regular file or a block device");
        }
        return stat;
    }

    @Override
    public String name() {
        return file.path().toString();
    }

    public Path path() {
        return file.path();
    }

    /** statx of the file at open time: type, identity (device, inode, rdev). */
    public FileStat stat() {
        return stat;
    }

    public boolean isDirect() {
        return file.isDirect();
    }

    @Override
    public long sizeBytes() {
        return sizeBytes;
    }

    @Override
    public long refreshSize() throws IOException {
        inFlight.acquire();
        try {
            long size = blockDevice
                    ? BlockDevices.geometry(file).sizeBytes()
                    : file.stat().sizeBytes();
            sizeBytes = size - size % logicalBlockBytes;
            largestSizeBytes = Math.max(largestSizeBytes, sizeBytes);
            return sizeBytes;
        } finally {
            inFlight.release();
        }
    }

    @Override
    public int logicalBlockBytes() {
        return logicalBlockBytes;
    }

    @Override
    public int bufferAlignmentBytes() {
        return file.directMemoryAlignment();
    }

    /**
     * {@link Device#checkRequest}, except that a request past the current end but inside the size
     * the device had is an I/O error (EIO), as the kernel's "attempt to access beyond end of
     * device": the file was truncated, or the block device shrank, under us. Its writes are
     * refused rather than growing a truncated file again over a hole.
     */
    private void checkRequest(String op, String call, long offsetBytes, long lengthBytes, MemorySegment buffer)
            throws ErrnoException {
        checkRequest(this, op, call, offsetBytes, lengthBytes, buffer);
    }

    /** The same for I/O through {@code via} (this device, or its page-cache view: no buffer alignment). */
    private void checkRequest(
            Device via, String op, String call, long offsetBytes, long lengthBytes, MemorySegment buffer)
            throws ErrnoException {
        long size = sizeBytes;
        if (offsetBytes >= 0
                && lengthBytes >= 0
                && offsetBytes + lengthBytes > size
                && offsetBytes + lengthBytes <= largestSizeBytes) {
            throw new ErrnoException(
                    call,
                    Errno.EIO.value(),
                    file.path(),
                    offsetBytes,
                    lengthBytes,
                    "beyond the end of the device: it shrank to " + size + " bytes");
        }
        Device.checkRequest(via, op, offsetBytes, lengthBytes, buffer);
    }

    @Override
    public void read(long offsetBytes, MemorySegment dst) throws IOException {
        read(file, this, offsetBytes, dst, false);
    }

    /** Opened without O_DIRECT ({@link Option#BUFFERED}): {@code preadv2(RWF_NOWAIT)}; else false. */
    @Override
    public boolean readIfCached(long offsetBytes, MemorySegment dst) throws IOException {
        return read(file, this, offsetBytes, dst, true);
    }

    /**
     * A read through {@code file}; {@code nowait}: only from the page cache ({@link
     * NativeFile#readIfCached}), false when it would wait or {@code file} is O_DIRECT.
     */
    private boolean read(NativeFile file, Device via, long offsetBytes, MemorySegment dst, boolean nowait)
            throws IOException {
        if (nowait && file.isDirect()) {
            return false;
        }
        checkRequest(via, "read", nowait ? "preadv2" : "pread", offsetBytes, dst.byteSize(), dst);
        inFlight.acquire();
        try {
            long n = nowait ? file.readIfCached(offsetBytes, dst) : file.read(offsetBytes, dst);
            if (n == NativeFile.WOULD_BLOCK) {
                return false;
            }
            if (n != dst.byteSize()) {
                throw new ErrnoException(
                        "pread",
                        Errno.EIO.value(),
                        file.path(),
                        offsetBytes + n,
                        dst.byteSize() - n,
                        "end of file: the file is shorter than the device size " + sizeBytes);
            }
            return true;
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void write(long offsetBytes, MemorySegment src) throws IOException {
        write(file, this, offsetBytes, src);
    }

    private void write(NativeFile file, Device via, long offsetBytes, MemorySegment src) throws IOException {
        checkWritable("write");
        checkRequest(via, "write", "pwrite", offsetBytes, src.byteSize(), src);
        inFlight.acquire();
        try {
            file.write(offsetBytes, src);
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void flush() throws IOException {
        inFlight.acquire();
        try {
            // fdatasync on a block device also issues a cache flush; on a file it flushes the
            // file's data and the metadata needed to find it, then the disk cache.
            file.fdatasync();
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void discard(long offsetBytes, long lengthBytes) throws IOException {
        checkWritable("discard");
        checkRequest("discard", "discard", offsetBytes, lengthBytes, null);
        if (lengthBytes == 0) {
            return;
        }
        inFlight.acquire();
        try {
            if (blockDevice) {
                BlockDevices.discard(file, offsetBytes, lengthBytes);
            } else {
                try {
                    file.fallocate(Fallocate.PUNCH_HOLE, offsetBytes, lengthBytes);
                } catch (ErrnoException e) {
                    if (e.errno() != Errno.EOPNOTSUPP) {
                        throw e;
                    }
                    // A discard may leave old data behind; without hole punching it does nothing.
                }
            }
        } finally {
            inFlight.release();
        }
    }

    @Override
    public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
        checkWritable("writeZeroes");
        checkRequest("writeZeroes", "writeZeroes", offsetBytes, lengthBytes, null);
        if (lengthBytes == 0) {
            return;
        }
        inFlight.acquire();
        try {
            if (blockDevice) {
                BlockDevices.zeroOut(file, offsetBytes, lengthBytes);
                return;
            }
            try {
                file.fallocate(Fallocate.ZERO_RANGE, offsetBytes, lengthBytes);
            } catch (ErrnoException e) {
                if (e.errno() != Errno.EOPNOTSUPP) {
                    throw e;
                }
                writeZeroBuffers(offsetBytes, lengthBytes);
            }
        } finally {
            inFlight.release();
        }
    }

    /**
     * fallocate(FALLOC_FL_KEEP_SIZE) of a sparse regular file: the blocks become allocated and
     * unwritten (they read as zeroes, as the hole did), the size stays. A file allocated to its
     * end (made thick) is left alone, without taking its inode lock: false.
     */
    @Override
    public boolean allocate(long offsetBytes, long lengthBytes) throws IOException {
        checkWritable("allocate");
        checkRequest("allocate", "fallocate", offsetBytes, lengthBytes, null);
        if (blockDevice) {
            return false;
        }
        inFlight.acquire();
        try {
            FileStat now = file.stat();
            if (now.allocatedBytes() >= now.sizeBytes()) {
                return false;
            }
            if (lengthBytes > 0) {
                file.fallocate(Fallocate.KEEP_SIZE, offsetBytes, lengthBytes);
            }
            return true;
        } finally {
            inFlight.release();
        }
    }

    /**
     * SEEK_DATA and SEEK_HOLE on a regular file; a block device reports data. Ends are rounded
     * out to the logical block (a hole edge inside one counts as data).
     */
    @Override
    public Extent extentAt(long offsetBytes, long maxBytes) throws IOException {
        checkRequest("extentAt", "lseek", offsetBytes, maxBytes, null);
        if (blockDevice) {
            return Extent.data(maxBytes);
        }
        inFlight.acquire();
        try {
            long data = file.nextData(offsetBytes);
            if (data < 0 || data >= offsetBytes + maxBytes) {
                return Extent.hole(maxBytes);
            }
            long holeEnd = data / logicalBlockBytes * logicalBlockBytes;
            if (holeEnd > offsetBytes) {
                return Extent.hole(holeEnd - offsetBytes);
            }
            long hole = file.nextHole(offsetBytes);
            if (hole < 0) {
                return Extent.data(maxBytes); // shrunk under us: what the read would say is not ours to guess
            }
            long dataEnd = (hole + logicalBlockBytes - 1) / logicalBlockBytes * logicalBlockBytes;
            return Extent.data(
                    Math.min(Math.max(dataEnd, offsetBytes + logicalBlockBytes), offsetBytes + maxBytes) - offsetBytes);
        } finally {
            inFlight.release();
        }
    }

    private void writeZeroBuffers(long offsetBytes, long lengthBytes) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            long chunk = Math.min(lengthBytes, ZERO_CHUNK_BYTES);
            MemorySegment zeroes = arena.allocate(chunk, Math.max(bufferAlignmentBytes(), 8));
            for (long done = 0; done < lengthBytes; done += chunk) {
                long n = Math.min(chunk, lengthBytes - done);
                file.write(offsetBytes + done, zeroes.asSlice(0, n));
            }
        }
    }

    /**
     * A shared mmap of the range when it is page-aligned (offset and length multiples of {@link
     * MappedRegion#PAGE_BYTES}); null otherwise, because a page shared between mmapped metadata
     * and O_DIRECT data writes could lose stores when direct I/O invalidates the page cache.
     */
    @Override
    public MetadataMap mapMetadata(long offsetBytes, long lengthBytes) throws IOException {
        checkRequest("mapMetadata", "mmap", offsetBytes, lengthBytes, null);
        if (offsetBytes % MappedRegion.PAGE_BYTES != 0
                || lengthBytes % MappedRegion.PAGE_BYTES != 0
                || lengthBytes == 0) {
            return null;
        }
        inFlight.acquire();
        try {
            MapArenas.Group group = mapArenas.take(lengthBytes);
            MappedRegion region;
            try {
                region = file.map(offsetBytes, lengthBytes, group.arena);
            } catch (ErrnoException | RuntimeException e) {
                group.release();
                throw e;
            }
            AtomicBoolean closed = new AtomicBoolean();
            return new MetadataMap() {
                @Override
                public MemorySegment segment() {
                    return region.segment();
                }

                @Override
                public void sync(long offset, long length) throws IOException {
                    region.sync(offset, length);
                }

                /** madvise(MADV_WILLNEED): the pages are read now, not at the first store. */
                @Override
                public void prefetch() {
                    region.willNeed();
                }

                /** msync(MS_SYNC) is vfs_fsync_range(datasync): written back and the device cache flushed. */
                @Override
                public boolean syncIsDurable() {
                    return true;
                }

                /** flush() is fdatasync of this file: its dirty pages, mapped ones included, are written back. */
                @Override
                public boolean flushWritesBack() {
                    return true;
                }

                @Override
                public void close() {
                    if (closed.compareAndSet(false, true)) {
                        region.close();
                        group.release(); // unmapped with the rest of its group
                    }
                }
            };
        } finally {
            inFlight.release();
        }
    }

    private void checkWritable(String op) {
        if (readOnly) {
            throw new IllegalStateException(op + "(" + name() + "): the device is open read-only");
        }
    }

    /**
     * The same file through the page cache: a second descriptor opened through this one without
     * O_DIRECT (and without O_EXCL: this one holds the device). Direct and buffered I/O of one
     * file are coherent in Linux (a direct write drops the cached pages it covers, a direct read
     * writes dirty ones back first), and fdatasync of either descriptor syncs the file's pages.
     */
    @Override
    public synchronized Device buffered() throws IOException {
        if (!file.isDirect()) {
            return this;
        }
        if (bufferedView == null) {
            inFlight.acquire();
            try {
                bufferedView =
                        new BufferedView(file.reopen(EnumSet.of(readOnly ? OpenFlag.READ_ONLY : OpenFlag.READ_WRITE)));
            } finally {
                inFlight.release();
            }
        }
        return bufferedView;
    }

    /** Closes the descriptors (releasing the lock) once I/O in progress has finished. Idempotent. */
    @Override
    public void close() throws IOException {
        if (inFlight.close()) {
            mapArenas.close();
            BufferedView view;
            synchronized (this) {
                view = bufferedView;
            }
            try {
                if (view != null) {
                    view.file.close();
                }
            } finally {
                file.close();
            }
        }
    }

    /**
     * {@link #buffered()}: reads and writes through its own descriptor, everything else (size,
     * flush, discard, zeroes, metadata maps, in-flight accounting) through the device's.
     */
    private final class BufferedView implements Device {
        private final NativeFile file;

        BufferedView(NativeFile file) {
            this.file = file;
        }

        @Override
        public String name() {
            return FileDevice.this.name();
        }

        @Override
        public long sizeBytes() {
            return FileDevice.this.sizeBytes();
        }

        @Override
        public long refreshSize() throws IOException {
            return FileDevice.this.refreshSize();
        }

        @Override
        public int logicalBlockBytes() {
            return FileDevice.this.logicalBlockBytes();
        }

        @Override
        public int bufferAlignmentBytes() {
            return 1;
        }

        @Override
        public void read(long offsetBytes, MemorySegment dst) throws IOException {
            FileDevice.this.read(file, this, offsetBytes, dst, false);
        }

        /** {@code preadv2(RWF_NOWAIT)}: served only from the page cache. */
        @Override
        public boolean readIfCached(long offsetBytes, MemorySegment dst) throws IOException {
            return FileDevice.this.read(file, this, offsetBytes, dst, true);
        }

        @Override
        public void write(long offsetBytes, MemorySegment src) throws IOException {
            FileDevice.this.write(file, this, offsetBytes, src);
        }

        @Override
        public void flush() throws IOException {
            FileDevice.this.flush();
        }

        @Override
        public void discard(long offsetBytes, long lengthBytes) throws IOException {
            FileDevice.this.discard(offsetBytes, lengthBytes);
        }

        @Override
        public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
            FileDevice.this.writeZeroes(offsetBytes, lengthBytes);
        }

        @Override
        public MetadataMap mapMetadata(long offsetBytes, long lengthBytes) throws IOException {
            return FileDevice.this.mapMetadata(offsetBytes, lengthBytes);
        }

        @Override
        public boolean allocate(long offsetBytes, long lengthBytes) throws IOException {
            return FileDevice.this.allocate(offsetBytes, lengthBytes);
        }

        @Override
        public Extent extentAt(long offsetBytes, long maxBytes) throws IOException {
            return FileDevice.this.extentAt(offsetBytes, maxBytes);
        }

        @Override
        public Device buffered() {
            return this;
        }

        /** The device owns this view: it goes when the device is closed. */
        @Override
        public void close() {}

        @Override
        public String toString() {
            return "FileDevice[" + name() + ", page cache view]";
        }
    }

    @Override
    public String toString() {
        return "FileDevice[" + name() + ", " + stat.type().describe() + ", " + sizeBytes + " bytes, "
                + (isDirect() ? "O_DIRECT" : "buffered") + "]";
    }
}
