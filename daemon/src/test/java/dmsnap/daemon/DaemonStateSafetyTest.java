package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's directories and records (issue 16): a run or state directory that is not the
 * daemon's own is refused and left as it was; nothing in them is followed through a symbolic
 * link; a second daemon on the same state directory is refused; and a change the state
 * directory cannot take fails and is not made, so a restart brings back what was acknowledged.
 */
class DaemonStateSafetyTest {
    private static final String PRECIOUS = "precious: a root-owned file the daemon must not touch\n";

    @TempDir
    Path dir;

    private static Daemon start(Path run, Path state) throws IOException {
        return Daemon.start(new DaemonConfig(run, state), "test");
    }

    private static ControlResponse send(Daemon d, String verb, String name, String table, String newName)
            throws IOException {
        return new ControlClient(d.config().controlSocket())
                .send(new ControlRequest(verb, name, table, null, newName, false, false, false, false, false));
    }

    private static List<String> lines(Daemon d, String verb) throws IOException {
        return assertInstanceOf(ControlResponse.Success.class, send(d, verb, null, null, null))
                .lines();
    }

    private static int mode(Path p) throws IOException {
        return (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 07777;
    }

    private static void chmod(String mode, Path p) throws Exception {
        assertEquals(
                0,
                new ProcessBuilder("chmod", mode, p.toString())
                        .inheritIO()
                        .start()
                        .waitFor());
    }

    private static String refusal(Path run, Path state) {
        return assertThrows(IOException.class, () -> start(run, state).close()).getMessage();
    }

    @Test
    void aNewRunDirectoryIsMadeWithMode0700() throws Exception {
        Path run = dir.resolve("a/b/run");
        try (Daemon d = start(run, null)) {
            assertEquals(0700, mode(run));
        }
    }

    @Test
    void aSymbolicLinkAsRunDirectoryIsRefusedAndItsTargetKeepsItsMode() throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        chmod("0755", shared);
        Path run = Files.createSymbolicLink(dir.resolve("run"), shared);
        assertEquals("run directory " + run + " is a symbolic link: give the real directory", refusal(run, null));
        assertEquals(0755, mode(shared));
        assertFalse(Files.exists(shared.resolve("daemon.lock")));
    }

    @Test
    void aSharedRunDirectoryIsRefusedAndKeepsItsMode() throws Exception {
        Path tmpLike = Files.createDirectory(dir.resolve("tmp"));
        chmod("1777", tmpLike);
        assertEquals(
                "run directory " + tmpLike + " has mode 1777, not 0700: chmod 0700 it if it is the daemon's own,"
                        + " or give a new one (made with mode 0700)",
                refusal(tmpLike, null));
        assertEquals(01777, mode(tmpLike));
        Path readable = Files.createDirectory(dir.resolve("readable"));
        chmod("0755", readable);
        assertTrue(refusal(readable, null).contains("has mode 0755, not 0700"));
        assertEquals(0755, mode(readable));
        assertFalse(Files.exists(readable.resolve("daemon.lock")));
    }

    @Test
    void aDirectoryOfAnotherUserIsRefused() throws Exception {
        assumeTrue(OwnedDirectory.effectiveUid() == 0, "chown needs root");
        Path run = Files.createDirectory(
                dir.resolve("run"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.setAttribute(run, "unix:uid", 65534);
        assertEquals(
                "run directory " + run + " is owned by uid 65534, not by this daemon's uid 0: give a directory of"
                        + " its own",
                refusal(run, null));
        Path state = Files.createDirectory(dir.resolve("state"));
        Files.setAttribute(state, "unix:uid", 65534);
        assertTrue(
                refusal(dir.resolve("run2"), state).startsWith("state directory " + state + " is owned by uid 65534"));
    }

    @Test
    void aDirectoryInsideOneOthersMayWriteToIsRefusedUnlessThatOneIsSticky() throws Exception {
        Path open = Files.createDirectory(dir.resolve("open"));
        chmod("0777", open);
        Path run = Files.createDirectory(
                open.resolve("run"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        assertEquals(
                "run directory " + run + " is inside " + open + ", which others may write to (mode 0777, not"
                        + " sticky): they could put another directory in its place; chmod go-w " + open
                        + " or give a directory"
                        + " elsewhere",
                refusal(run, null));
        assertFalse(Files.exists(run.resolve("daemon.lock")));
        // Any directory above, group-writable too, and also where a symbolic link on the way leads.
        Path group = Files.createDirectories(dir.resolve("group/a"));
        chmod("0770", dir.resolve("group"));
        assertTrue(
                refusal(dir.resolve("run"), group.resolve("state"))
                        .startsWith("state directory " + group.resolve("state") + " is inside " + dir.resolve("group")
                                + ", which others may write to (mode 0770,"),
                refusal(dir.resolve("run"), group.resolve("state")));
        Path link = Files.createSymbolicLink(dir.resolve("link"), group);
        assertTrue(refusal(dir.resolve("run"), link.resolve("state"))
                .contains(" is inside " + dir.resolve("group") + ", which others may write to"));
        assertFalse(Files.exists(group.resolve("state")), "nothing made");
        // A sticky one (as /tmp) is fine: others cannot move what is not theirs.
        Path tmpLike = Files.createDirectory(dir.resolve("tmp"));
        chmod("1777", tmpLike);
        try (Daemon d = start(tmpLike.resolve("run"), tmpLike.resolve("state"))) {
            assertEquals(List.of("No devices found"), lines(d, "ls"));
        }
    }

    @Test
    void theRunAndStateDirectoriesMustBeTwo() throws Exception {
        Path run = dir.resolve("run");
        assertEquals("--run-dir and --state-dir must be different directories", refusal(run, run));
        assertEquals(
                "--run-dir and --state-dir must be different directories", refusal(run, dir.resolve("x/../run/.")));
        assertFalse(Files.exists(run), "nothing made");
        try (Daemon d = start(run, null)) { // exists now: another name of it is the same directory
            assertEquals(0700, mode(run));
        }
        Path link = Files.createSymbolicLink(dir.resolve("link"), run);
        assertEquals("--run-dir and --state-dir must be different directories", refusal(run, link));
    }

    @Test
    void aSymbolicLinkAsLockFileIsRefusedAndItsTargetIsUntouched() throws Exception {
        Path victim = Files.writeString(dir.resolve("victim"), PRECIOUS);
        Path run = Files.createDirectory(
                dir.resolve("run"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.createSymbolicLink(run.resolve("daemon.lock"), victim);
        assertEquals(
                "the lock file " + run.resolve("daemon.lock") + " of the run directory is a symbolic link:"
                        + " remove it",
                refusal(run, null));
        assertEquals(PRECIOUS, Files.readString(victim));
    }

    @Test
    void aStateDirectoryThatIsALinkOrWritableByOthersIsRefusedAndKeepsItsMode() throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        chmod("0775", shared);
        assertEquals(
                "state directory " + shared + " is writable by others (mode 0775): chmod go-w it if it is the"
                        + " daemon's own, or give a new one (made with mode 0700)",
                refusal(dir.resolve("run"), shared));
        assertEquals(0775, mode(shared));
        Path link = Files.createSymbolicLink(dir.resolve("state"), shared);
        assertTrue(refusal(dir.resolve("run"), link).startsWith("state directory " + link + " is a symbolic link"));
        assertEquals(0775, mode(shared));
        assertFalse(Files.exists(shared.resolve("daemon.lock")));
    }

    @Test
    void aSymbolicLinkAsTemporaryRecordIsNeverFollowed() throws Exception {
        Path victim = Files.writeString(dir.resolve("victim"), PRECIOUS);
        Path state = dir.resolve("state");
        try (Daemon d = start(dir.resolve("run"), state)) {
            Path tmp = Files.createSymbolicLink(state.resolve(".vol.device.tmp"), victim);
            ControlResponse.Failure f =
                    assertInstanceOf(ControlResponse.Failure.class, send(d, "create", "vol", "0 100 zero", null));
            assertEquals(
                    "cannot record the new table of vol in the state directory " + state + ": " + tmp
                            + " is in the way and is not a regular file of uid " + OwnedDirectory.effectiveUid()
                            + " (a symbolic link?): remove it; nothing was changed",
                    f.reason());
            assertEquals(List.of("No devices found"), lines(d, "ls"));
            assertEquals(PRECIOUS, Files.readString(victim));
            assertTrue(Files.isSymbolicLink(tmp));
        }
    }

    @Test
    void aSecondDaemonOnTheSameStateDirectoryIsRefused() throws Exception {
        Path state = dir.resolve("state");
        try (Daemon first = start(dir.resolve("run1"), state)) {
            assertInstanceOf(ControlResponse.Success.class, send(first, "create", "vol", "0 100 zero", null));
            String record = Files.readString(state.resolve("vol.device"));
            assertEquals(
                    "another dmsnap daemon (pid " + ProcessHandle.current().pid() + ") is using state directory "
                            + state,
                    refusal(dir.resolve("run2"), state));
            assertEquals(record, Files.readString(state.resolve("vol.device")), "the first daemon's record is intact");
            assertInstanceOf(ControlResponse.Success.class, send(first, "create", "vol2", "0 100 zero", null));
            assertTrue(Files.exists(state.resolve("vol2.device")), "the first daemon still records");
        }
        try (Daemon again = start(dir.resolve("run2"), state)) { // the lock went with the first daemon
            assertEquals(List.of("vol: 0 100 zero ", "vol2: 0 100 zero "), lines(again, "table"));
        }
    }

    @Test
    void aFullStateDirectoryRefusesChangesAndARestartBringsBackWhatWasAcknowledged() throws Exception {
        Path state;
        List<String> acknowledged;
        try (TinyTmpfs small = TinyTmpfs.mount(dir.resolve("small"), 64)) {
            state = small.path().resolve("state");
            try (Daemon d = start(dir.resolve("run"), state)) {
                assertInstanceOf(ControlResponse.Success.class, send(d, "create", "kept", "0 100 zero", null));
                small.fill();
                ControlResponse.Failure create =
                        assertInstanceOf(ControlResponse.Failure.class, send(d, "create", "lost", "0 100 zero", null));
                assertEquals(Errno.ENOSPC, create.errno());
                assertTrue(
                        create.reason()
                                .startsWith(
                                        "cannot record the new table of lost in the state directory " + state + ": "),
                        create.reason());
                assertTrue(create.reason().contains("No space left on device"), create.reason());
                assertEquals(List.of("kept\t(253:0)"), lines(d, "ls"));
                assertInstanceOf(ControlResponse.Success.class, send(d, "load", "kept", "0 200 zero", null));
                assertEquals(
                        Errno.ENOSPC,
                        assertInstanceOf(ControlResponse.Failure.class, send(d, "resume", "kept", null, null))
                                .errno());
                assertEquals(List.of("kept: 0 100 zero "), lines(d, "table"));
                // A rename is one rename(2) of the record: it needs no space.
                assertInstanceOf(ControlResponse.Success.class, send(d, "rename", "kept", null, "renamed"));
                acknowledged = lines(d, "table");
            }
            // A state directory of an older daemon has no lock file: made on the full file system,
            // it stays without the pid, and the devices come back all the same.
            Files.delete(state.resolve("daemon.lock"));
            small.fill();
            try (Daemon restarted = start(dir.resolve("run"), state)) {
                assertEquals(acknowledged, lines(restarted, "table"));
                assertEquals(List.of("renamed: 0 100 zero "), acknowledged);
            }
        }
    }
}
