package dmsnap.daemon;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.table.TableParser;
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

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
        assertEquals(List.of(new StateStore.Recorded("b", null, "0 100 zero\n", false)), state.load());
        assertTrue(Files.readString(stateDir.resolve("b.device")).contains("name=b"));
    }

    @Test
    void theFileNameIsTheDeviceName() throws Exception {
        // A crash between the rename(2) and the rewrite of the name line leaves the old name inside.
        Files.writeString(stateDir.resolve("new.device"), "name=old\ntable=0 100 zero\n");
        assertEquals(List.of(new StateStore.Recorded("new", null, "0 100 zero", false)), state.load());
    }

    @Test
    void aTemporaryFileACrashLeftIsReplaced() throws Exception {
        Files.writeString(stateDir.resolve(".a.device.tmp"), "half a rec");
        device("a", "0 100 zero");
        assertFalse(Files.exists(stateDir.resolve(".a.device.tmp")));
        assertEquals(List.of(new StateStore.Recorded("a", null, "0 100 zero\n", false)), state.load());
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
        assertEquals("another dmsnap daemon (pid " + ProcessHandle.current().pid() + ") is using state directory "
                + stateDir, e.getMessage());
        state.close();
        state = new StateStore(stateDir);
    }

    @Test
    void aFailedRecordNamesItsErrnoAndTheStateDirectory() throws Exception {
        Files.createDirectory(stateDir.resolve(".a.device.tmp")); // in the way: not a regular file
        MappedDevice a = dm.create("a", null, null);
        dm.load("a", TableParser.parse("0 100 zero"));
        DmException e = assertThrows(DmException.class, () -> a.resume(state));
        assertEquals("EIO", e.errno());
        assertTrue(e.getMessage().startsWith("cannot record the new table of a in the state directory " + stateDir + ": "),
                e.getMessage());
        assertEquals(null, a.liveTable());
        assertEquals(List.of(), state.load());
    }

    @Test
    void errnoOfAFileOperation() {
        assertEquals("ENOSPC", StateStore.errnoOf(new ErrnoException("pwrite", Errno.ENOSPC, dir, 0, 10)));
        assertEquals("ENOSPC", StateStore.errnoOf(new FileSystemException("a", "b", Errno.ENOSPC.text())));
        assertEquals("EROFS", StateStore.errnoOf(new IOException(Errno.EROFS.text())));
        assertEquals("EIO", StateStore.errnoOf(new IOException("something else")));
    }
}
