package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.ffm.Errno;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ERROR line that invalidates a snapshot says why: the kernel's phrase, then the device and
 * the errno text of the failure behind it, in one line.
 */
class InvalidationLogTest {
    private static final int CHUNK_BYTES = 4096;

    @TempDir
    Path dir;

    /** What the logger (slf4j-simple, on System.err) printed while {@code body} ran. */
    private static List<String> errorLinesOf(String device, ThrowingRunnable body) throws Exception {
        PrintStream original = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(
                new OutputStream() {
                    @Override
                    public void write(int b) {
                        captured.write(b);
                        original.write(b);
                    }

                    @Override
                    public void write(byte[] b, int off, int len) {
                        captured.write(b, off, len);
                        original.write(b, off, len);
                    }
                },
                true,
                StandardCharsets.UTF_8));
        try {
            body.run();
        } finally {
            System.setErr(original);
        }
        return Arrays.stream(captured.toString(StandardCharsets.UTF_8).split("\n"))
                .filter(l -> l.contains(" ERROR ") && l.contains(" - " + device + ": "))
                .toList();
    }

    @FunctionalInterface
    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    /** Backing devices whose COW fails the requests {@code failing} matches with {@code errno}. */
    private static BackingDevices cowFailing(Predicate<FaultyDevice.Request> failing, Errno errno) {
        return new BackingDevices(real -> {
            FileDevice file = FileDevice.open(real, FileDevice.Option.BUFFERED);
            if (!real.getFileName().toString().equals("cow.img")) {
                return file;
            }
            return new FaultyDevice(file).failWith(errno).failWhen(failing);
        });
    }

    @Test
    void aCopyIntoACowOnAFullFileSystemNamesTheCowAndEnospc() throws Exception {
        // Data chunks 2 and 3 can be written, chunk 4 on needs blocks the file system does not have.
        BackingDevices devices =
                cowFailing(r -> r.op() == FaultyDevice.Op.WRITE && r.offsetBytes() >= 4 * CHUNK_BYTES, Errno.ENOSPC);
        try (SnapshotEngine e = new SnapshotEngine(dir, 1 << 20, 1 << 20, devices)) {
            e.createOriginAndSnapshot("P", 8);
            String cow = "faulty(" + e.cow.toRealPath() + ")";
            List<String> errors = errorLinesOf("snap", () -> {
                e.write("origin", 0, 8, 0x42);
                // Chunks 1 and 2 in one write: their copies run together and commit in one round,
                // the good one's callback first; the line still has the failed one's reason.
                e.write("origin", 8, 16, 0x42);
            });
            assertEquals(1, errors.size(), "one ERROR line: " + errors);
            String expected = "snap: Invalidating snapshot: Error reading/writing. COW " + cow + ": pwrite(path=" + cow
                    + ", offset=16384, length=4096) failed: ENOSPC (No space left on device): injected fault";
            assertEquals(expected, errors.getFirst().substring(errors.getFirst().indexOf(" - ") + 3));
            assertEquals("0 2048 snapshot Invalid", e.status("snap", false));
        }
    }

    @Test
    void aFailedMetadataWriteNamesTheCowAndTheArea() throws Exception {
        boolean[] armed = {false};
        BackingDevices devices = cowFailing(
                r -> armed[0]
                        && r.op() == FaultyDevice.Op.WRITE
                        && r.offsetBytes() >= CHUNK_BYTES
                        && r.offsetBytes() < 2 * CHUNK_BYTES,
                Errno.ENOSPC);
        try (SnapshotEngine e = new SnapshotEngine(dir, 1 << 20, 1 << 20, devices)) {
            e.createOriginAndSnapshot("P", 8);
            String cow = "faulty(" + e.cow.toRealPath() + ")";
            armed[0] = true;
            List<String> errors = errorLinesOf("snap", () -> e.write("origin", 0, 8, 0x42));
            assertEquals(1, errors.size(), "one ERROR line: " + errors);
            String expected = "snap: Invalidating snapshot: Error reading/writing. COW " + cow
                    + ": writing exception area 0 failed: pwrite(path=" + cow
                    + ", offset=4096, length=512) failed: ENOSPC (No space left on device): injected fault";
            assertEquals(expected, errors.getFirst().substring(errors.getFirst().indexOf(" - ") + 3));
        }
    }

    @Test
    void aFullCowNamesTheCowAndItsSize() throws Exception {
        // 4 chunks: the header, area 0 and two data chunks.
        try (SnapshotEngine e = new SnapshotEngine(dir, 1 << 20, 4 * CHUNK_BYTES)) {
            e.createOriginAndSnapshot("P", 8);
            List<String> errors = errorLinesOf("snap", () -> {
                for (int chunk = 0; chunk < 3; chunk++) {
                    e.write("origin", chunk * 8L, 8, 0x42);
                }
            });
            assertEquals(1, errors.size(), "one ERROR line: " + errors);
            assertEquals(
                    "snap: Invalidating snapshot: Unable to allocate exception. COW " + e.cow.toRealPath()
                            + " is full (32 sectors)",
                    errors.getFirst().substring(errors.getFirst().indexOf(" - ") + 3));
        }
    }
}
