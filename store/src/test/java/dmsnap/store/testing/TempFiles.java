package dmsnap.store.testing;

import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.Fallocate;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;

/** Backing files for device tests. */
public final class TempFiles {
    private TempFiles() {}

    /** A sparse, zero-filled file of {@code sizeBytes}. */
    public static Path sparse(Path dir, String name, long sizeBytes) throws IOException {
        Path file = dir.resolve(name);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(sizeBytes);
        }
        return file;
    }

    /** Bytes the file system has allocated to {@code file} ({@code st_blocks} x 512). */
    public static long allocatedBytes(Path file) throws IOException {
        try (NativeFile located = NativeFile.locate(file)) {
            return located.stat().allocatedBytes();
        }
    }

    /**
     * Null when files in {@code dir} can be allocated ahead ({@code fallocate} with KEEP_SIZE),
     * else why not (for assumeTrue).
     */
    public static String fallocateUnavailable(Path dir) throws IOException {
        Path probe = Files.createTempFile(dir, "fallocate-probe", ".img");
        try (NativeFile f = NativeFile.open(probe, OpenFlag.READ_WRITE)) {
            f.truncate(1 << 20);
            f.fallocate(Fallocate.KEEP_SIZE, 0, 1 << 20);
            return null;
        } catch (ErrnoException e) {
            return dir + " cannot allocate ahead: " + e.getMessage();
        } finally {
            Files.deleteIfExists(probe);
        }
    }

    /**
     * Null when files in {@code dir} can be opened with O_DIRECT, else why not (for assumeTrue;
     * never fall back to buffered I/O silently).
     */
    public static String directIoUnavailable(Path dir) throws IOException {
        Path probe = Files.createTempFile(dir, "odirect-probe", ".img");
        try (NativeFile f = NativeFile.open(probe, OpenFlag.READ_WRITE, OpenFlag.DIRECT)) {
            return null;
        } catch (ErrnoException e) {
            return dir + " does not support O_DIRECT: " + e.getMessage();
        } finally {
            Files.deleteIfExists(probe);
        }
    }
}
