package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.testing.TempFiles;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file truncated under its device: once the device has seen the new size, I/O past it is an
 * I/O error (EIO, as a block device's "beyond end of device"), not a caller's mistake, and a
 * write there does not grow the file again; I/O past any size it ever had is still a mistake.
 */
class FileDeviceShrinkTest {
    @TempDir
    Path dir;

    @Test
    void ioPastTheShrunkEndIsEioAndWritesDoNotGrowTheFile() throws Exception {
        Path file = TempFiles.sparse(dir, "cow.img", 64 << 10);
        try (FileDevice device = FileDevice.open(file, FileDevice.Option.BUFFERED);
                Arena arena = Arena.ofConfined()) {
            MemorySegment block = arena.allocate(4096, 4096);
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
                f.setLength(8192);
            }
            // Not looked at yet: a read past the end of the file is short, an EIO already.
            ErrnoException shortRead = assertThrows(ErrnoException.class, () -> device.read(16384, block));
            assertEquals(Errno.EIO, shortRead.errno());
            assertEquals(8192, device.refreshSize());
            ErrnoException read = assertThrows(ErrnoException.class, () -> device.read(16384, block));
            assertEquals(Errno.EIO, read.errno());
            assertTrue(
                    read.getMessage().endsWith("beyond the end of the device: it shrank to 8192 bytes"),
                    read.getMessage());
            ErrnoException write = assertThrows(ErrnoException.class, () -> device.write(61440, block));
            assertEquals(Errno.EIO, write.errno());
            assertEquals(8192, Files.size(file), "the write did not grow the file");
            assertEquals(
                    Errno.EIO,
                    assertThrows(ErrnoException.class, () -> device.writeZeroes(8192, 4096))
                            .errno());
            device.read(4096, block); // inside: fine
            assertThrows(IllegalArgumentException.class, () -> device.read(65536, block), "past any size it had");
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
                f.setLength(32768);
            }
            assertEquals(32768, device.refreshSize());
            device.write(16384, block); // grown again: fine
        }
    }
}
