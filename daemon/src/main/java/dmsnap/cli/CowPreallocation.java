package dmsnap.cli;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.Fallocate;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;

/**
 * How a COW file's new bytes are provided, named as qemu-img's {@code preallocation}. A COW on
 * an LV is thick: every chunk exists before the first exception. A sparse file is not, and on
 * ext4 each first write of a chunk then allocates under the inode lock (so concurrent
 * first-touch writes run one at a time) and its flush commits the journal. {@code full} writes
 * the zeroes up front and makes the file behave like the LV; {@code falloc} only reserves the
 * space: the blocks stay "unwritten", written in parallel but converted (the journal again).
 */
enum CowPreallocation {
    OFF,
    FALLOC,
    FULL;

    private static final long PIECE_BYTES = 1 << 20;
    private static final long DIRECT_ALIGN = 4096;

    static CowPreallocation parse(String name) {
        for (CowPreallocation p : values()) {
            if (p.name().equalsIgnoreCase(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException("--preallocation " + name + ": expected off, falloc or full");
    }

    /**
     * Grows {@code path} from {@code fromBytes} to {@code toBytes} this way; the bytes below stay
     * as they are. On failure (no space left, say) the file is as it was: a new one is removed,
     * an existing one cut back to {@code fromBytes}.
     */
    void grow(Path path, long fromBytes, long toBytes, String task) throws IOException {
        boolean existed = Files.exists(path);
        try {
            switch (this) {
                case OFF -> setLength(path, toBytes);
                case FALLOC -> {
                    try (NativeFile file = open(path, false)) {
                        file.fallocate(Fallocate.ALLOCATE, fromBytes, toBytes - fromBytes);
                        file.fdatasync();
                    }
                }
                case FULL -> {
                    boolean direct = fromBytes % DIRECT_ALIGN == 0 && toBytes % DIRECT_ALIGN == 0;
                    try (NativeFile file = open(path, direct)) {
                        writeZeroes(file, fromBytes, toBytes, task);
                        file.fdatasync();
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            if (existed) {
                setLength(path, fromBytes);
            } else {
                Files.deleteIfExists(path);
            }
            throw e;
        }
    }

    private static void setLength(Path path, long bytes) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(bytes);
        }
    }

    /** Read-write, created if missing; with O_DIRECT where asked and the file system has it (a thick COW's zeroes need not pass through the page cache). */
    private static NativeFile open(Path path, boolean direct) throws ErrnoException {
        EnumSet<OpenFlag> flags = EnumSet.of(OpenFlag.READ_WRITE, OpenFlag.CREATE);
        if (direct) {
            EnumSet<OpenFlag> withDirect = EnumSet.copyOf(flags);
            withDirect.add(OpenFlag.DIRECT);
            try {
                return NativeFile.open(path, withDirect);
            } catch (ErrnoException e) {
                if (e.errno() != Errno.EINVAL) {
                    throw e;
                }
            }
        }
        return NativeFile.open(path, flags);
    }

    private static void writeZeroes(NativeFile file, long fromBytes, long toBytes, String task) throws IOException {
        try (Arena arena = Arena.ofConfined();
                ProgressLine progress = ProgressLine.onTerminal(task, toBytes - fromBytes)) {
            MemorySegment zeroes = arena.allocate(PIECE_BYTES, DIRECT_ALIGN); // allocate() zero-fills
            for (long at = fromBytes; at < toBytes; at += PIECE_BYTES) {
                file.write(at, zeroes.asSlice(0, Math.min(PIECE_BYTES, toBytes - at)));
                if (progress != null) {
                    progress.update(Math.min(toBytes, at + PIECE_BYTES) - fromBytes);
                }
            }
        }
    }
}
