package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a restart brings back after the steps that touch several records: a merge start (the
 * snapshot's record and the origin's) and a rename (the records of the devices stacked on the
 * renamed one). A daemon stopped here keeps its records as a killed one would: the orderly stop
 * removes its devices without recording that.
 */
class DaemonRestoreTest {
    @TempDir
    Path dir;

    private Path state() {
        return dir.resolve("state");
    }

    private Daemon start() throws IOException {
        return Daemon.start(new DaemonConfig(dir.resolve("run"), state()), "test");
    }

    private static ControlResponse send(Daemon d, String verb, String name, String table, String newName)
            throws IOException {
        return new ControlClient(d.config().controlSocket())
                .send(new ControlRequest(verb, name, table, null, newName, false, false, false, false, false));
    }

    private static void ok(Daemon d, String verb, String name, String table) throws IOException {
        assertInstanceOf(ControlResponse.Success.class, send(d, verb, name, table, null), verb + " " + name);
    }

    private static List<String> tables(Daemon d) throws IOException {
        return assertInstanceOf(ControlResponse.Success.class, send(d, "table", null, null, null))
                .lines();
    }

    /** vol: a snapshot-origin over base.img; snap: a snapshot of it on snap.cow. */
    private void originAndSnapshot(Daemon d) throws IOException {
        Path base = Files.write(dir.resolve("base.img"), new byte[4 << 20]);
        Path cow = Files.write(dir.resolve("snap.cow"), new byte[2 << 20]);
        ok(d, "create", "vol", "0 8192 snapshot-origin " + base);
        ok(d, "suspend", "vol", null);
        ok(d, "create", "snap", "0 8192 snapshot " + base + " " + cow + " P 8");
        ok(d, "resume", "vol", null);
    }

    private String originLine() throws IOException {
        return "vol: 0 8192 snapshot-origin " + dir.resolve("base.img").toRealPath();
    }

    private String snapshotLine() throws IOException {
        return "snap: 0 8192 snapshot " + dir.resolve("base.img").toRealPath() + " "
                + dir.resolve("snap.cow").toRealPath() + " P 8";
    }

    @Test
    void aMergeStartThatCannotBeRecordedKeepsBothRecordsAndARestartBringsBothBack() throws Exception {
        String snapRecord;
        String volRecord;
        try (Daemon d = start()) {
            originAndSnapshot(d);
            snapRecord = Files.readString(state().resolve("snap.device"));
            volRecord = Files.readString(state().resolve("vol.device"));
            // No record can be written now (as on a full file system); a removal still can.
            Files.createDirectory(state().resolve(".vol.device.tmp"));
            Files.createDirectory(state().resolve(".snap.device.tmp"));
            ControlResponse.Failure f =
                    assertInstanceOf(ControlResponse.Failure.class, send(d, "merge", "snap", null, null));
            assertTrue(
                    f.reason().startsWith("cannot record the merge of snap in the state directory " + state()),
                    f.reason());
            assertEquals(List.of(snapshotLine(), originLine()), tables(d), "both run as before");
        }
        assertEquals(snapRecord, Files.readString(state().resolve("snap.device")), "the snapshot's record is intact");
        assertEquals(volRecord, Files.readString(state().resolve("vol.device")), "the origin's record is intact");
        try (Daemon restarted = start()) {
            assertEquals(List.of(snapshotLine(), originLine()), tables(restarted));
        }
    }

    @Test
    void aSnapshotWhoseCowIsBeingMergedIsNotRestoredAndItsRecordGoes() throws Exception {
        try (Daemon d = start()) {
            originAndSnapshot(d);
        }
        // A daemon killed between recording the merge table and forgetting the snapshot's record.
        Path cow = dir.resolve("snap.cow").toRealPath();
        String merge = "0 8192 snapshot-merge " + dir.resolve("base.img").toRealPath() + " " + cow + " P 8";
        Files.writeString(state().resolve("vol.device"), "name=vol\ntable=" + merge + "\\n\n");
        try (Daemon restarted = start()) {
            List<String> tables = tables(restarted);
            assertEquals(1, tables.size(), tables.toString());
            assertTrue(tables.getFirst().startsWith("vol: 0 8192 snapshot-merge "), tables.toString());
            assertFalse(Files.exists(state().resolve("snap.device")), "the superseded record is gone");
        }
    }

    @Test
    void aDeviceStackedOnARenamedOneComesBackOnItsNewName() throws Exception {
        try (Daemon d = start()) {
            ok(d, "create", "a", "0 100 zero");
            ok(d, "create", "b", "0 100 linear dm:a 0");
            assertInstanceOf(ControlResponse.Success.class, send(d, "rename", "a", null, "c"));
            assertEquals(List.of("b: 0 100 linear dm:c 0", "c: 0 100 zero "), tables(d));
        }
        try (Daemon restarted = start()) {
            assertEquals(List.of("b: 0 100 linear dm:c 0", "c: 0 100 zero "), tables(restarted));
        }
    }

    @Test
    void aRecordStackedOnAnotherComesBackAfterItWhateverSeparatesItsWords() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), new byte[1 << 20]);
        try (Daemon d = start()) {
            ok(d, "create", "vol", "0 2048 snapshot-origin " + base);
            ok(d, "create", "upper", "0 2048 linear dm:vol 0");
        }
        // Edited by hand: a tab after the device argument. Origins are restored last, so only
        // reading the table's arguments shows that upper has to wait for vol.
        Files.writeString(state().resolve("upper.device"), "name=upper\ntable=0 2048 linear dm:vol\\t0\n");
        try (Daemon restarted = start()) {
            assertEquals(
                    List.of("upper: 0 2048 linear dm:vol 0", "vol: 0 2048 snapshot-origin " + base.toRealPath()),
                    tables(restarted));
        }
    }
}
