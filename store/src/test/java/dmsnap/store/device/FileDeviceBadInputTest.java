package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input gets one clear line and changes nothing. */
class FileDeviceBadInputTest {
    @TempDir
    Path dir;

    private static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    private static void assertOneLine(String message) {
        assertFalse(message.contains("\n"), "one line: " + message);
    }

    @Test
    void missingPathIsNamedAndNotCreated() {
        Path missing = dir.resolve("no-such.img");
        ErrnoException e = assertThrows(ErrnoException.class, () -> FileDevice.open(missing));
        assertEquals(Errno.ENOENT, e.errno());
        assertEquals("open(path=" + missing + ") failed: ENOENT (No such file or directory)", e.getMessage());
        assertFalse(Files.exists(missing));
    }

    @Test
    void directoryIsRefused() {
        IOException e = assertThrows(IOException.class, () -> FileDevice.open(dir));
        assertEquals(dir + " is a directory: a device must be a regular file or a block device", e.getMessage());
    }

    @Test
    void characterDeviceIsRefused() {
        IOException e = assertThrows(
                IOException.class, () -> FileDevice.open(Path.of("/dev/null"), FileDevice.Option.BUFFERED));
        assertEquals(
                "/dev/null is a character device: a device must be a regular file or a block device", e.getMessage());
    }

    /** A FIFO: a read-only open of it would wait for a writer that never comes. */
    private Path fifo() throws Exception {
        Path fifo = dir.resolve("fifo");
        assertEquals(
                0,
                new ProcessBuilder("mkfifo", fifo.toString())
                        .inheritIO()
                        .start()
                        .waitFor());
        return fifo;
    }

    @Test
    void aFifoIsRefusedWithoutWaitingForAWriter() throws Exception {
        Path fifo = fifo();
        String expected = fifo + " is a fifo: a device must be a regular file or a block device";
        // The deadline only turns the old behaviour (an open that never returns) into a failure.
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            assertEquals(
                    expected,
                    assertThrows(IOException.class, () -> FileDevice.open(fifo, FileDevice.Option.READ_ONLY))
                            .getMessage());
            assertEquals(
                    expected,
                    assertThrows(IOException.class, () -> FileDevice.open(fifo)).getMessage());
            assertEquals(
                    expected,
                    assertThrows(IOException.class, () -> FileDevice.probeSizeSectors(fifo))
                            .getMessage());
        });
    }

    @Test
    void aSocketIsRefused() throws IOException {
        Path socket = dir.resolve("socket");
        try (var server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            server.bind(java.net.UnixDomainSocketAddress.of(socket));
            String expected = socket + " is a socket: a device must be a regular file or a block device";
            assertEquals(
                    expected,
                    assertThrows(IOException.class, () -> FileDevice.open(socket))
                            .getMessage());
            assertEquals(
                    expected,
                    assertThrows(IOException.class, () -> FileDevice.probeSizeSectors(socket))
                            .getMessage());
        }
    }

    @Test
    void aFileInUseIsBusyForASecondOpener() throws IOException {
        Path img = TempFiles.sparse(dir, "held.img", 1 << 20);
        try (FileDevice first = FileDevice.open(img, FileDevice.Option.BUFFERED)) {
            ErrnoException e =
                    assertThrows(ErrnoException.class, () -> FileDevice.open(img, FileDevice.Option.BUFFERED));
            assertEquals(Errno.EBUSY, e.errno());
            assertTrue(
                    e.getMessage().startsWith("flock(path=" + img + ") failed: EBUSY (Device or resource busy)"),
                    e.getMessage());
            assertOneLine(e.getMessage());
            // Read-only users are refused too while a writer holds it.
            assertThrows(
                    ErrnoException.class,
                    () -> FileDevice.open(img, FileDevice.Option.BUFFERED, FileDevice.Option.READ_ONLY));
            assertEquals(1 << 20, first.sizeBytes());
        }
        try (FileDevice again = FileDevice.open(img, FileDevice.Option.BUFFERED)) {
            assertEquals(1 << 20, again.sizeBytes());
        }
    }

    @Test
    void misalignedDirectRequestIsRefusedBeforeTheSyscallAndWritesNothing() throws IOException {
        String why = TempFiles.directIoUnavailable(dir);
        assumeTrue(why == null, why);
        Path img = TempFiles.sparse(dir, "direct.img", 1 << 20);
        String before = sha256(img);
        try (FileDevice device = FileDevice.open(img);
                Arena arena = Arena.ofConfined()) {
            int block = device.logicalBlockBytes();
            MemorySegment buf = arena.allocate(8192, 4096);
            buf.fill((byte) 0x5a);
            IllegalArgumentException offset =
                    assertThrows(IllegalArgumentException.class, () -> device.write(100, buf.asSlice(0, block)));
            assertTrue(
                    offset.getMessage().contains("not aligned to the logical block size (" + block + " bytes)"),
                    offset.getMessage());
            IllegalArgumentException address =
                    assertThrows(IllegalArgumentException.class, () -> device.write(0, buf.asSlice(8, block)));
            assertTrue(
                    address.getMessage().contains("aligned to " + device.bufferAlignmentBytes() + " bytes"),
                    address.getMessage());
            assertOneLine(offset.getMessage());
            assertOneLine(address.getMessage());
        }
        assertEquals(before, sha256(img));
    }

    @Test
    void readPastTheEndIsRefused() throws IOException {
        Path img = TempFiles.sparse(dir, "small.img", 64 << 10);
        String before = sha256(img);
        try (FileDevice device = FileDevice.open(img, FileDevice.Option.BUFFERED);
                Arena arena = Arena.ofConfined()) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> device.read(60 << 10, arena.allocate(8192, 4096)));
            assertEquals(
                    "read(" + img + ", offset=61440, length=8192) is outside the device (size 65536 bytes)",
                    e.getMessage());
        }
        assertEquals(before, sha256(img));
    }

    @Test
    void writeToAReadOnlyDeviceIsRefused() throws IOException {
        Path img = TempFiles.sparse(dir, "ro.img", 64 << 10);
        try (FileDevice device = FileDevice.open(img, FileDevice.Option.READ_ONLY, FileDevice.Option.BUFFERED);
                Arena arena = Arena.ofConfined()) {
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> device.write(0, arena.allocate(512, 512)));
            assertEquals("write(" + img + "): the device is open read-only", e.getMessage());
        }
    }
}
