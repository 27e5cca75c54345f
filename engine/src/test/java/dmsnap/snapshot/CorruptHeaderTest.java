package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.FaultRig.LogCapture;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A COW whose header the store refuses (spec 2.5): the load fails with the kernel's
 * {@code Failed to read snapshot metadata} and the store's reason on the same line (the kernel logs
 * the reason first, then the constructor's error), so that a one-line CLI error says why; the
 * errno is the kernel store's: ENXIO for a bad magic, EINVAL for a version or chunk size it cannot
 * use, EIO for a header it cannot read.
 */
class CorruptHeaderTest {
    private static final int SNAP_MAGIC = 0x70416e53;

    @TempDir
    Path dir;

    /** A header fault, and the store's words for it. */
    enum HeaderFault {
        BAD_MAGIC(0x12345678, 1, 8, Errno.ENXIO, "Invalid or corrupt snapshot"),
        VERSION_2(SNAP_MAGIC, 2, 8, Errno.EINVAL, "unable to handle snapshot disk version 2"),
        CHUNK_SIZE_NOT_A_POWER_OF_2(
                SNAP_MAGIC, 1, 12, Errno.EINVAL, "invalid on-disk chunk size 12: Chunk size is not a power of 2."),
        CHUNK_SIZE_0(SNAP_MAGIC, 1, 0, Errno.EINVAL, "invalid on-disk chunk size 0: Chunk size is not a power of 2.");

        final int magic;
        final int version;
        final int chunkSectors;
        final Errno errno;
        final String reason;

        HeaderFault(int magic, int version, int chunkSectors, Errno errno, String reason) {
            this.magic = magic;
            this.version = version;
            this.chunkSectors = chunkSectors;
            this.errno = errno;
            this.reason = reason;
        }
    }

    private static void writeHeader(Path cow, HeaderFault fault) throws Exception {
        ByteBuffer header = ByteBuffer.allocate(16)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putInt(fault.magic)
                .putInt(1)
                .putInt(fault.version)
                .putInt(fault.chunkSectors)
                .flip();
        try (FileChannel f = FileChannel.open(cow, StandardOpenOption.WRITE)) {
            f.write(header, 0);
        }
    }

    @ParameterizedTest
    @EnumSource(HeaderFault.class)
    void theLoadErrorCarriesTheStoresReason(HeaderFault fault) throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 1 << 20, 1 << 20);
                LogCapture log = new LogCapture()) {
            writeHeader(e.cow, fault);
            TableLoadException failure = assertThrows(
                    TableLoadException.class,
                    () -> e.dm.create("snap", null, TableParser.parse(e.snapshotTable("P", 8))));
            assertEquals("Failed to read snapshot metadata: " + fault.reason, failure.getMessage());
            assertEquals("snapshot", failure.target());
            assertEquals(fault.errno, failure.errno());
            // The kernel's order: the store's reason is logged first, on its own.
            assertEquals(List.of("snap: " + fault.reason), log.errors());
            if (fault.magic == SNAP_MAGIC && fault.version == 1) {
                // A chunk size that differs from the table's is only a warning; it fails as a chunk size.
                assertEquals(
                        1,
                        log.warnings().stream()
                                .filter(w -> w.endsWith(": chunk size " + fault.chunkSectors
                                        + " in device metadata overrides table chunk size of 8."))
                                .count(),
                        log.warnings().toString());
            }
        }
    }

    @Test
    void aHeaderThatCannotBeReadFailsWithEio() throws Exception {
        BackingDevices failingCowReads = new BackingDevices(real -> {
            FileDevice file = FileDevice.open(real, FileDevice.Option.BUFFERED);
            return real.getFileName().toString().equals("cow.img")
                    ? new FaultyDevice(file).failWhen(r -> r.op() == FaultyDevice.Op.READ)
                    : file;
        });
        try (SnapshotEngine e = new SnapshotEngine(dir, 1 << 20, 1 << 20, failingCowReads);
                LogCapture log = new LogCapture()) {
            TableLoadException failure = assertThrows(
                    TableLoadException.class,
                    () -> e.dm.create("snap", null, TableParser.parse(e.snapshotTable("P", 8))));
            assertTrue(failure.getMessage().startsWith("Failed to read snapshot metadata: "), failure.getMessage());
            assertEquals(Errno.EIO, failure.errno());
        }
    }
}
