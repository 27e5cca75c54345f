package dmsnap.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Opening by access mode: read-only only where the device refuses writes, and writers refused then. */
class BackingDevicesAccessTest {
    @TempDir
    Path dir;

    /** An opener whose read-write open fails as on a read-only mount, recording what was opened how. */
    private BackingDevices readOnlyMount(List<String> opens) {
        return new BackingDevices(new BackingDevices.Opener() {
            @Override
            public Device open(Path real) throws IOException {
                opens.add("rw " + real.getFileName());
                throw new ErrnoException("open", Errno.EROFS, real, -1, -1);
            }

            @Override
            public Device openReadOnly(Path real) {
                opens.add("ro " + real.getFileName());
                return new MemoryDevice(real.toString(), 1 << 20);
            }
        });
    }

    @Test
    void aReaderGetsAReadOnlyOpenOfADeviceThatRefusesWritesAndAWriterIsRefused() throws Exception {
        Path image = Files.write(dir.resolve("image"), new byte[4096]);
        List<String> opens = new ArrayList<>();
        BackingDevices devices = readOnlyMount(opens);
        ErrnoException refused =
                assertThrows(ErrnoException.class, () -> devices.open(image.toString(), BackingDevices.Access.WRITE));
        assertEquals(Errno.EROFS, refused.errno(), "a writer on a device that refuses writes");
        try (BackingDevices.Handle reader = devices.open(image.toString(), BackingDevices.Access.READ)) {
            ErrnoException shared = assertThrows(
                    ErrnoException.class, () -> devices.open(image.toString(), BackingDevices.Access.WRITE));
            assertEquals(Errno.EROFS, shared.errno(), "a writer on the shared read-only open");
            try (BackingDevices.Handle second = devices.open(image.toString(), BackingDevices.Access.READ)) {
                assertEquals(reader.device(), second.device(), "readers share one open");
            }
            assertEquals(1, devices.openCount());
        }
        assertEquals(0, devices.openCount());
        assertEquals(List.of("rw image", "rw image", "ro image"), opens, "read-write is tried first, once per open");
    }

    @Test
    void aReaderOfAWritableDeviceSharesTheReadWriteOpenWithWriters() throws Exception {
        Path image = Files.write(dir.resolve("image"), new byte[4096]);
        List<String> opens = new ArrayList<>();
        BackingDevices devices = new BackingDevices(real -> {
            opens.add("rw " + real.getFileName());
            return new MemoryDevice(real.toString(), 1 << 20);
        });
        try (BackingDevices.Handle reader = devices.open(image.toString(), BackingDevices.Access.READ);
                BackingDevices.Handle writer = devices.open(image.toString(), BackingDevices.Access.WRITE)) {
            assertEquals(reader.device(), writer.device());
        }
        assertEquals(List.of("rw image"), opens);
    }

    @Test
    void otherOpenErrorsAreNotTakenForAReadOnlyDevice() throws Exception {
        Path image = Files.write(dir.resolve("image"), new byte[4096]);
        BackingDevices devices = new BackingDevices(real -> {
            throw new ErrnoException("open", Errno.EBUSY, real, -1, -1);
        });
        ErrnoException e =
                assertThrows(ErrnoException.class, () -> devices.open(image.toString(), BackingDevices.Access.READ));
        assertEquals(Errno.EBUSY, e.errno());
    }
}
