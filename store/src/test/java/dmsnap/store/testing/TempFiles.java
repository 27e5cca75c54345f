package dmsnap.store.testing;

import dmsnap.ffm.ErrnoException;
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
