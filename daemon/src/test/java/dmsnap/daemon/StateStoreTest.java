package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The state directory's records: atomic files, renames, what a crash or a stranger leaves behind, errnos. */
class StateStoreTest {
    @TempDir
    Path dir;

    private Path stateDir;
    private StateStore state;
    private DeviceManager dm;

    @BeforeEach
    void setUp() throws IOException {
        stateDir = dir.resolve("state");
        state = new StateStore(stateDir);
        dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
    }

    @AfterEach
    void tearDown() throws IOException {
        state.close();
    }

    private MappedDevice device(String name, String table) throws Exception {
        MappedDevice d = dm.create(name, null, null);
        dm.load(name, TableParser.parse(table));
        d.resume(state);
        return d;
    }

    @Test
    void aRenameMovesTheRecordInOneStep() throws Exception {
        device("a", "0 100 zero");
        Files.writeString(stateDir.resolve("b.device"), "table=0 1 error\n"); // a device that was not restored
        dm.rename("a", "b", state);
        assertFalse(Files.exists(stateDir.resolve("a.device")));
        assertEquals(
                List.of(new StateStore.Recorded("b", null, "0 100 zero\n", false, CacheMode.DIRECTSYNC)), state.load());
        assertTrue(Files.readString(stateDir.resolve("b.device")).contains("name=b"));
    }

    @Test
    void aRenameRewritesTheTablesAndRecordsOfDevicesThatNameIt() throws Exception {
        device("a", "0 100 zero");
        MappedDevice b = device("b", "0 100 linear dm:a 0");
        MappedDevice c = device("c", "0 50 linear dm:a 50");
        dm.load("c", TableParser.parse("0 20 linear dm:a 10\n20 20 linear dm:a 60")); // inactive, not recorded yet
        device("ab", "0 100 zero");
        device("other", "0 100 linear dm:ab 0"); // names ab, not a
        dm.rename("a", "z", state);
        assertEquals("0 100 linear dm:z 0\n", b.liveTable().toString());
        assertEquals("0 50 linear dm:z 50\n", c.liveTable().toString());
        assertEquals(List.of("0 100 linear dm:z 0"), b.statusLines(StatusType.TABLE, false));
        assertEquals(
                java.util.Map.of(
                        "z",
                        "0 100 zero\n",
                        "ab",
                        "0 100 zero\n",
                        "b",
                        "0 100 linear dm:z 0\n",
                        "c",
                        "0 50 linear dm:z 50\n",
                        "other",
                        "0 100 linear dm:ab 0\n"),
                recordedTables());
        c.resume(state); // its inactive table names the new name too
        assertEquals(
                "0 20 linear dm:z 10\n20 20 linear dm:z 60\n", recordedTables().get("c"));
    }

    @Test
    void aRenameWhoseDependentsCannotBeRecordedChangesNothing() throws Exception {
        device("a", "0 100 zero");
        MappedDevice b = device("b", "0 100 linear dm:a 0");
        Files.createDirectory(stateDir.resolve(".b.device.tmp")); // in the way of b's new record
        DmException e = assertThrows(DmException.class, () -> dm.rename("a", "z", state));
        assertTrue(
                e.getMessage().startsWith("cannot record the rename of a to z in the state directory " + stateDir),
                e.getMessage());
        assertEquals(null, dm.find("z"));
        assertEquals("0 100 linear dm:a 0\n", b.liveTable().toString());
        assertEquals(java.util.Map.of("a", "0 100 zero\n", "b", "0 100 linear dm:a 0\n"), recordedTables());
        assertEquals(List.of(".b.device.tmp", "a.device", "b.device", "daemon.lock"), files());
    }

    private java.util.Map<String, String> recordedTables() throws IOException {
        java.util.Map<String, String> tables = new java.util.TreeMap<>();
        for (StateStore.Recorded r : state.load()) {
            tables.put(r.name(), r.table());
        }
        return tables;
    }

    private List<String> files() throws IOException {
        try (var s = Files.list(stateDir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void theFileNameIsTheDeviceName() throws Exception {
        // A crash between the rename(2) and the rewrite of the name line leaves the old name inside.
        Files.writeString(stateDir.resolve("new.device"), "name=old\ntable=0 100 zero\n");
        assertEquals(List.of(new StateStore.Recorded("new", null, "0 100 zero", false, null)), state.load());
    }

    @Test
    void aTemporaryFileACrashLeftIsReplaced() throws Exception {
        Files.writeString(stateDir.resolve(".a.device.tmp"), "half a rec");
        device("a", "0 100 zero");
        assertFalse(Files.exists(stateDir.resolve(".a.device.tmp")));
        assertEquals(
                List.of(new StateStore.Recorded("a", null, "0 100 zero\n", false, CacheMode.DIRECTSYNC)), state.load());
    }

    @Test
    void aRecordThatIsASymbolicLinkIsNotRead() throws Exception {
        Path elsewhere = Files.writeString(dir.resolve("elsewhere"), "table=0 100 zero\n");
        Files.createSymbolicLink(stateDir.resolve("x.device"), elsewhere);
        assertEquals(List.of(), state.load());
    }

    @Test
    void aSecondStoreOnTheDirectoryIsRefusedUntilTheFirstIsClosed() throws Exception {
        IOException e = assertThrows(IOException.class, () -> new StateStore(stateDir));
        assertEquals(
                "another dmsnap daemon (pid " + ProcessHandle.current().pid() + ") is using state directory "
                        + stateDir,
                e.getMessage());
        state.close();
        state = new StateStore(stateDir);
    }

    @Test
    void aFailedRecordNamesItsErrnoAndTheStateDirectory() throws Exception {
        Files.createDirectory(stateDir.resolve(".a.device.tmp")); // in the way: not a regular file
        MappedDevice a = dm.create("a", null, null);
        dm.load("a", TableParser.parse("0 100 zero"));
        DmException e = assertThrows(DmException.class, () -> a.resume(state));
        assertEquals(Errno.EIO, e.errno());
        assertTrue(
                e.getMessage().startsWith("cannot record the new table of a in the state directory " + stateDir + ": "),
                e.getMessage());
        assertEquals(null, a.liveTable());
        assertEquals(List.of(), state.load());
    }

    @Test
    void errnoOfAFileOperation() {
        assertEquals(Errno.ENOSPC, StateStore.errnoOf(new ErrnoException("pwrite", Errno.ENOSPC, dir, 0, 10)));
        assertEquals(Errno.ENOSPC, StateStore.errnoOf(new FileSystemException("a", "b", Errno.ENOSPC.text())));
        assertEquals(Errno.EROFS, StateStore.errnoOf(new IOException(Errno.EROFS.text())));
        assertEquals(Errno.EIO, StateStore.errnoOf(new IOException("something else")));
    }
}
