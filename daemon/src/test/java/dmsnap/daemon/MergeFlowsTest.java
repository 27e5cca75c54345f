package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.control.ControlResponse;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The daemon's lvconvert --merge flow: refusals, deferral while open, the sequence, the end table, the records. */
class MergeFlowsTest {
    @TempDir
    Path dir;

    private ChunkCopier copier;
    private DeviceManager dm;
    private StateStore state;
    private MergeFlows flows;
    private Arena arena;
    private Path base;

    @BeforeEach
    void setUp() throws Exception {
        copier = new ChunkCopier(2, 1 << 20);
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        state = new StateStore(dir.resolve("state"));
        flows = new MergeFlows(dm, state);
        arena = Arena.ofShared();
        base = Files.write(dir.resolve("base.img"), new byte[4 << 20]);
        dm.create("vol", null, TableParser.parse("0 8192 snapshot-origin " + base));
    }

    @AfterEach
    void tearDown() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
        arena.close();
    }

    private void snapshot(String name) throws Exception {
        Path cow = Files.write(dir.resolve(name + ".cow"), new byte[2 << 20]);
        dm.get("vol").suspend();
        dm.create(name, null, TableParser.parse("0 8192 snapshot " + base + " " + cow + " P 8"));
        dm.get("vol").resume();
        state.record(dm.get(name));
    }

    private void write(String device, long sector, int value) throws Exception {
        MemorySegment b = arena.allocate(8 << 9, 4096).fill((byte) value);
        dm.get(device).submit(IoRequest.write(sector, b, false));
    }

    private String table(String device) throws Exception {
        return String.join("\n", dm.get(device).statusLines(StatusType.TABLE, false));
    }

    /** Runs the poller until the flow of vol is finished. */
    private void untilFinished() throws Exception {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!String.join("\n", ((ControlResponse.Success) flows.status("vol")).lines())
                .contains("finished")) {
            assertTrue(System.nanoTime() < deadline, "the merge did not finish within 60 s");
            flows.check();
            Thread.sleep(5);
        }
    }

    @Test
    void refusals() throws Exception {
        ControlResponse notSnapshot = flows.merge("vol");
        assertEquals(new ControlResponse.Failure("merge", Errno.EINVAL, "vol is not a snapshot"), notSnapshot);
        assertEquals(Errno.ENXIO, ((ControlResponse.Failure) flows.merge("nosuch")).errno());
        snapshot("snap");
        dm.remove("vol", false);
        ControlResponse noOrigin = flows.merge("snap");
        assertEquals(
                "no origin device of snap is active (a snapshot-origin over " + base.toRealPath() + ")",
                ((ControlResponse.Failure) noOrigin).reason());
        assertEquals(List.of("No merges"), ((ControlResponse.Success) flows.status(null)).lines());
    }

    @Test
    void theSequenceMergesAndTheOriginEndsLinear() throws Exception {
        snapshot("snap");
        write("vol", 0, 0x42);
        ControlResponse.Success started = assertInstanceOf(ControlResponse.Success.class, flows.merge("snap"));
        assertEquals(
                List.of(
                        "loaded vol: 0 8192 snapshot-merge " + base.toRealPath() + " "
                                + dir.resolve("snap.cow").toRealPath() + " P 8",
                        "suspended vol",
                        "suspended snap",
                        "resumed vol: the exception store of snap was handed over, merging",
                        "removed snap (it errors all I/O after the handover)"),
                started.lines());
        assertEquals("merging", started.data().path("state").asText());
        assertTrue(dm.find("snap") == null);
        Properties recorded = new Properties();
        try (var in = Files.newInputStream(dir.resolve("state/vol.merge"))) {
            recorded.load(in);
        }
        assertEquals("snap", recorded.getProperty("snapshot"));
        assertTrue(Files.notExists(dir.resolve("state/snap.device")), "the snapshot's record is gone");
        untilFinished();
        assertEquals("0 8192 linear " + base.toRealPath() + " 0", table("vol"));
        assertEquals(0, Files.readAllBytes(base)[0], "the origin is the snapshot again");
        assertTrue(Files.notExists(dir.resolve("state/vol.merge")));
        assertTrue(Files.readString(dir.resolve("state/vol.device")).contains("linear"));
        assertEquals(
                List.of("vol: merge of snap finished; vol is now: 0 8192 linear " + base.toRealPath() + " 0"),
                ((ControlResponse.Success) flows.status("snap")).lines());
    }

    @Test
    void anOpenOriginDefersTheMergeUntilNothingHoldsIt() throws Exception {
        snapshot("snap");
        write("vol", 0, 0x43);
        snapshot("other"); // sees 0x43, which the merge overwrites
        dm.create("upper", null, TableParser.parse("0 8192 linear dm:vol 0"));
        ControlResponse.Success deferred = assertInstanceOf(ControlResponse.Success.class, flows.merge("snap"));
        assertEquals(
                List.of(
                        "Can't merge over open origin volume.",
                        "Merging of snapshot snap will occur on next activation of vol (when nothing holds it open: 1 user now)."),
                deferred.lines());
        flows.check();
        assertEquals("0 8192 snapshot-origin " + base.toRealPath(), table("vol"), "nothing happens while open");
        assertEquals(
                List.of("vol: merge of snap waits for the next activation of vol (open by 1)"),
                ((ControlResponse.Success) flows.status(null)).lines());
        dm.remove("upper", false);
        untilFinished();
        assertEquals("0 8192 snapshot-origin " + base.toRealPath(), table("vol"), "another snapshot remains");
        assertEquals(0, Files.readAllBytes(base)[0]);
        MemorySegment b = arena.allocate(512, 4096);
        dm.get("other").submit(IoRequest.read(0, b));
        assertEquals(
                0x43, b.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0), "the other snapshot kept its point in time");
    }

    @Test
    void aMergeThatCannotBeRecordedDoesNotStartAndTheSnapshotKeepsItsRecord() throws Exception {
        snapshot("snap");
        state.record(dm.get("vol"));
        String snapRecord = Files.readString(dir.resolve("state/snap.device"));
        Files.createDirectory(dir.resolve("state/.vol.device.tmp")); // in the way of the merge table's record
        ControlResponse.Failure f = assertInstanceOf(ControlResponse.Failure.class, flows.merge("snap"));
        assertFalse(dm.get("vol").isSuspended(), "the origin runs");
        assertFalse(dm.get("snap").isSuspended(), "the snapshot runs");
        assertEquals(snapRecord, Files.readString(dir.resolve("state/snap.device")), "the snapshot's record is kept");
        assertEquals("0 8192 snapshot-origin " + base.toRealPath(), table("vol"));
        assertEquals("merge", f.operation());
        assertTrue(
                f.reason().startsWith("cannot record the merge of snap in the state directory " + dir.resolve("state")),
                f.reason());
        assertTrue(Files.readString(dir.resolve("state/vol.device")).contains("snapshot-origin"));
        assertTrue(Files.notExists(dir.resolve("state/vol.merge")));
        assertEquals(List.of("No merges"), ((ControlResponse.Success) flows.status(null)).lines());
        Files.delete(dir.resolve("state/.vol.device.tmp"));
        assertInstanceOf(ControlResponse.Success.class, flows.merge("snap"), "with the way free it merges");
        untilFinished();
    }

    @Test
    void aSnapshotRecordThatCannotBeRemovedDoesNotStopTheRecordedMerge() throws Exception {
        snapshot("snap");
        // Not removable: a non-empty directory where the snapshot's record is.
        Files.delete(dir.resolve("state/snap.device"));
        Files.createDirectories(dir.resolve("state/snap.device/x"));
        assertInstanceOf(ControlResponse.Success.class, flows.merge("snap"));
        assertTrue(
                Files.readString(dir.resolve("state/vol.device")).contains(" snapshot-merge "),
                "the merge is recorded");
        untilFinished();
        assertEquals("0 8192 linear " + base.toRealPath() + " 0", table("vol"));
    }

    @Test
    void aFinishedMergeWhoseTableCannotBeRecordedKeepsTheMergeTableUntilItCan() throws Exception {
        snapshot("snap");
        write("vol", 0, 0x44);
        assertInstanceOf(ControlResponse.Success.class, flows.merge("snap"));
        Path obstacle = Files.createDirectory(dir.resolve("state/.vol.device.tmp"));
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!String.join("\n", ((ControlResponse.Success) flows.status("vol")).lines())
                .contains("complete")) {
            assertTrue(System.nanoTime() < deadline, "the merge did not complete");
            flows.check(); // tries to finish, and cannot record the end table
            Thread.sleep(5);
        }
        flows.check();
        assertTrue(table("vol").contains(" snapshot-merge "), "the end table is not live before it is recorded");
        assertTrue(Files.readString(dir.resolve("state/vol.device")).contains("snapshot-merge"));
        Files.delete(obstacle);
        untilFinished();
        assertEquals("0 8192 linear " + base.toRealPath() + " 0", table("vol"));
        assertTrue(Files.readString(dir.resolve("state/vol.device")).contains("linear"));
    }
}
