package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.TargetTypes;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@code changed} request: the extents a device changed since a snapshot, and its refusals. */
class ControlChangedTest {
    @TempDir
    Path dir;

    private ChunkCopier copier;
    private DeviceManager dm;
    private ControlHandler handler;

    @BeforeEach
    void setUp() throws Exception {
        copier = new ChunkCopier(2, 1 << 20);
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        handler = new ControlHandler(dm, "test", dmsnap.device.DeviceRecorder.NONE);
        Path base = dir.resolve("base.img");
        Path cow = dir.resolve("cow.img");
        Files.write(base, new byte[1 << 20]);
        Files.write(cow, new byte[1 << 20]);
        dm.create("vol", null, TableParser.parse("0 2048 snapshot-origin " + base));
        dm.get("vol").suspend();
        dm.create("snap", null, TableParser.parse("0 2048 snapshot " + base + " " + cow + " P 8"));
        dm.get("vol").resume();
        dm.create("z", null, TableParser.parse("0 2048 zero"));
    }

    @AfterEach
    void tearDown() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    private ControlResponse.Failure failure(ControlRequest r) {
        return assertInstanceOf(ControlResponse.Failure.class, handler.handle(r));
    }

    @Test
    void theChangedExtentsAreListedAndTheRefusalsSayWhy() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(8192, 4096);
            dm.get("vol").submit(IoRequest.write(8, data, false)); // chunks 1 and 2
            dm.get("vol").submit(IoRequest.write(80, data.asSlice(0, 4096), false)); // chunk 10
        }
        ControlResponse.Success ok =
                assertInstanceOf(ControlResponse.Success.class, handler.handle(ControlRequest.changed("vol", "snap")));
        assertEquals(List.of("4096 8192", "40960 4096"), ok.lines());
        assertEquals(12288, ok.data().get("changedBytes").asLong());
        assertEquals(1 << 20, ok.data().get("size").asLong());

        ControlResponse.Failure unknown = failure(ControlRequest.changed("vol", "nope"));
        assertEquals(Errno.EINVAL, unknown.errno());
        assertEquals(
                "vol cannot be compared with nope: not a valid snapshot of its origin (these are: snap)",
                unknown.reason());
        assertEquals(
                "z cannot be compared with snap: it is no origin or snapshot with another valid snapshot",
                failure(ControlRequest.changed("z", "snap")).reason());
        assertEquals(
                "changed needs the snapshot to compare with",
                failure(ControlRequest.changed("vol", null)).reason());
        assertEquals(
                Errno.ENXIO, failure(ControlRequest.changed("gone", "snap")).errno());
    }
}
