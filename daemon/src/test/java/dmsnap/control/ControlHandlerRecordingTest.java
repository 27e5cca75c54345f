package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceInfo;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.Table;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control path records every change before it takes effect, and a change its recorder
 * refuses (a full state directory) fails with the recorder's errno and is not made: what is
 * recorded is always what was acknowledged.
 */
class ControlHandlerRecordingTest {
    @TempDir
    Path dir;

    private ChunkCopier copier;
    private DeviceManager dm;
    private Recorder recorder;
    private ControlHandler handler;

    /** Keeps "records" in a map, as the state directory would, or refuses with ENOSPC. */
    private static final class Recorder implements DeviceRecorder {
        final Map<String, String> records = new TreeMap<>();
        final List<String> calls = new ArrayList<>();
        boolean full;

        private void check(String call) throws DmException {
            calls.add(call);
            if (full) {
                throw new DmException(
                        Errno.ENOSPC, "cannot " + call + " in the state directory /state: No space left on device");
            }
        }

        @Override
        public void beforeLive(MappedDevice device, Table table, boolean readOnly, dmsnap.target.CacheMode cacheMode)
                throws DmException {
            check("live " + device.name());
            records.put(device.name(), table.toString().strip());
        }

        @Override
        public void beforeRename(MappedDevice device, String newName, List<Dependent> dependents) throws DmException {
            check("rename " + device.name());
            String table = records.remove(device.name());
            if (table != null) {
                records.put(newName, table);
            }
            for (Dependent d : dependents) {
                records.put(d.device().name(), d.liveTable().toString().strip());
            }
        }

        @Override
        public void beforeRemove(MappedDevice device) throws DmException {
            check("remove " + device.name());
            records.remove(device.name());
        }
    }

    @BeforeEach
    void setUp() {
        copier = new ChunkCopier(2, 1 << 20);
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        recorder = new Recorder();
        handler = new ControlHandler(dm, "test", recorder);
    }

    @AfterEach
    void tearDown() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    private ControlResponse request(String verb, String name, String table, String newName) {
        return handler.handle(new ControlRequest(verb, name, table, null, newName, false, false, false, false, false));
    }

    private Map<String, String> live() throws Exception {
        Map<String, String> tables = new TreeMap<>();
        for (MappedDevice d : dm.list()) {
            tables.put(
                    d.name(),
                    String.join("\n", d.statusLines(StatusType.TABLE, false)).strip());
        }
        return tables;
    }

    private static ControlResponse.Failure failure(ControlResponse r) {
        return assertInstanceOf(ControlResponse.Failure.class, r);
    }

    @Test
    void everyAcknowledgedChangeIsRecorded() throws Exception {
        assertInstanceOf(ControlResponse.Success.class, request("create", "a", "0 100 zero", null));
        assertInstanceOf(ControlResponse.Success.class, request("load", "a", "0 200 zero", null));
        assertEquals(Map.of("a", "0 100 zero"), recorder.records, "a loaded table is not live yet");
        assertInstanceOf(ControlResponse.Success.class, request("resume", "a", null, null));
        assertInstanceOf(ControlResponse.Success.class, request("rename", "a", null, "b"));
        assertEquals(Map.of("b", "0 200 zero"), recorder.records);
        assertEquals(recorder.records, live());
        assertInstanceOf(ControlResponse.Success.class, request("remove", "b", null, null));
        assertEquals(Map.of(), recorder.records);
        assertEquals(List.of("live a", "live a", "rename a", "remove b"), recorder.calls);
    }

    @Test
    void aCreateThatCannotBeRecordedFailsAndLeavesNoDevice() throws Exception {
        recorder.full = true;
        ControlResponse.Failure f = failure(request("create", "a", "0 100 zero", null));
        assertEquals(Errno.ENOSPC, f.errno());
        assertEquals("resume", f.operation());
        assertTrue(f.reason().contains("in the state directory /state"), f.reason());
        assertEquals(List.of("No devices found"), ((ControlResponse.Success) request("ls", null, null, null)).lines());
        assertNull(dm.find("a"));
        recorder.full = false;
        assertInstanceOf(ControlResponse.Success.class, request("create", "a", "0 100 zero", null));
        assertEquals(Map.of("a", "0 100 zero"), recorder.records);
    }

    @Test
    void aResumeThatCannotRecordTheNewTableKeepsTheOldOneLiveAndRunning() throws Exception {
        request("create", "a", "0 100 zero", null);
        request("load", "a", "0 200 zero", null);
        recorder.full = true;
        assertEquals(Errno.ENOSPC, failure(request("resume", "a", null, null)).errno());
        DeviceInfo info = dm.get("a").info();
        assertFalse(info.suspended(), "not left suspended");
        assertTrue(info.inactiveTable(), "the new table is still loaded, for a resume once there is room");
        assertEquals(Map.of("a", "0 100 zero"), live());
        assertEquals(Map.of("a", "0 100 zero"), recorder.records);
        recorder.full = false;
        assertInstanceOf(ControlResponse.Success.class, request("resume", "a", null, null));
        assertEquals(Map.of("a", "0 200 zero"), live());
        assertEquals(live(), recorder.records);
    }

    @Test
    void aRenameOrRemoveThatCannotBeRecordedChangesNothing() throws Exception {
        request("create", "a", "0 100 zero", null);
        recorder.full = true;
        assertEquals(Errno.ENOSPC, failure(request("rename", "a", null, "b")).errno());
        assertEquals(Map.of("a", "0 100 zero"), live());
        assertEquals(Errno.ENOSPC, failure(request("remove", "a", null, null)).errno());
        assertEquals(Map.of("a", "0 100 zero"), live());
        assertEquals(live(), recorder.records);
        recorder.full = false;
        assertInstanceOf(ControlResponse.Success.class, request("rename", "a", null, "b"));
        assertEquals(Map.of("b", "0 100 zero"), live());
        assertEquals(live(), recorder.records);
    }

    @Test
    void anOpenDeviceIsRefusedBeforeAnythingIsRecorded() throws Exception {
        request("create", "a", "0 100 zero", null);
        dm.get("a").open();
        assertEquals(Errno.EBUSY, failure(request("remove", "a", null, null)).errno());
        assertEquals(Map.of("a", "0 100 zero"), recorder.records);
        assertEquals(List.of("live a"), recorder.calls);
        dm.get("a").close();
    }

    @Test
    void aCreateWhosePreresumeRefusesTakesItsRecordAlong() throws Exception {
        // The second snapshot of a COW waits for a handover from a suspended first one (spec 8.3):
        // its preresume refuses after its table was recorded; the create removes device and record.
        Path base = Files.write(dir.resolve("base.img"), new byte[1 << 20]);
        Path cow = Files.write(dir.resolve("snap.cow"), new byte[1 << 20]);
        String table = "0 2048 snapshot " + base + " " + cow + " P 8";
        assertInstanceOf(ControlResponse.Success.class, request("create", "s1", table, null));
        ControlResponse.Failure f = failure(request("create", "s2", table, null));
        assertEquals("resume", f.operation());
        assertEquals("Unable to perform snapshot handover until source is suspended.", f.reason());
        assertNull(dm.find("s2"));
        assertEquals(List.of("live s1", "live s2", "remove s2"), recorder.calls);
        assertEquals(Set.of("s1"), recorder.records.keySet());
    }
}
