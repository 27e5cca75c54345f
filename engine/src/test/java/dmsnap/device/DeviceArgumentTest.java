package dmsnap.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.TargetTypes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Device arguments no device can answer to: the device being loaded ({@code dm_get_device}
 * refuses its own device with EINVAL), and paths no file system can hold (NUL, unpaired
 * surrogates). Each is the target's one-line refusal, and nothing is left behind. Found by
 * TableFuzzTest (seeds -4884660192131518520 and 8960406569682664584).
 */
class DeviceArgumentTest {
    @TempDir
    Path dir;

    private ChunkCopier copier;
    private BackingDevices backing;
    private DeviceManager dm;

    @BeforeEach
    void start() {
        copier = new ChunkCopier(2, 1 << 20);
        backing = new BackingDevices();
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), backing);
    }

    @AfterEach
    void stop() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    @Test
    void aTableMayNotNameTheDeviceItIsLoadedInto() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), new byte[8192]);
        var snapshot = assertThrows(
                TableLoadException.class,
                () -> dm.create("self", null, TableParser.parse("0 16 snapshot " + base + " dm:self N 8")));
        assertEquals("snapshot: Cannot get COW device", snapshot.target() + ": " + snapshot.getMessage());
        var linear = assertThrows(
                TableLoadException.class, () -> dm.create("self", null, TableParser.parse("0 8 linear dm:self 0")));
        assertEquals("Device lookup failed: dm:self is the device being loaded", linear.getMessage());
        MappedDevice self = dm.create("self", null, TableParser.parse("0 8 zero"));
        assertThrows(
                TableLoadException.class,
                () -> self.load(TableParser.parse("0 8 linear dm:self 0"), dm.targetTypes(), backing));
        assertEquals(List.of("self"), dm.list().stream().map(MappedDevice::name).toList());
        assertEquals(0, backing.openCount(), "the device does not hold itself open");
        dm.create("upper", null, TableParser.parse("0 8 linear dm:self 0")); // another device may
    }

    @Test
    void aPathNoFileSystemCanHoldIsNotFound() throws Exception {
        for (String path : List.of(dir + "/a\0b", dir + "/a\uD800b")) {
            var e = assertThrows(
                    TableLoadException.class,
                    () -> dm.create("x", null, TableParser.parse("0 8 linear " + path + " 0")));
            assertEquals("linear", e.target());
            assertEquals(1, e.getMessage().lines().count(), e.getMessage());
            assertEquals(List.of(), dm.list(), "nothing left behind");
        }
    }
}
