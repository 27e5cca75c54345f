package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.nbd.NbdTls;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --nbd-group}: the run directory becomes 0710 with the group (its members can reach
 * nbd.sock, not list the directory) and nbd.sock 0660 with the group, while control.sock stays
 * 0600; an existing run directory must already be so (it is never chmodded); a group or TLS file
 * that does not exist refuses the start before anything is made.
 */
class DaemonAccessTest {
    @TempDir
    Path dir;

    private static DaemonConfig config(Path run, String group, DaemonConfig.Tls tls) {
        return new DaemonConfig(
                run, null, CowMonitor.Policy.defaults(), new DaemonConfig.Nbd(null, null, group, tls), null);
    }

    private static PosixFileAttributes attributes(Path p) throws IOException {
        return Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    }

    private static String mode(Path p) throws IOException {
        return PosixFilePermissions.toString(attributes(p).permissions());
    }

    private static void chmod(String mode, Path p) throws IOException {
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(mode));
    }

    @Test
    void theGroupReachesTheNbdSocketAndNothingElse() throws Exception {
        Path run = dir.resolve("run");
        try (Daemon d = Daemon.start(config(run, "disk", null), "test")) {
            assertEquals("rwx--x---", mode(run));
            assertEquals("disk", attributes(run).group().getName());
            assertEquals("rw-rw----", mode(d.config().nbdSocket()));
            assertEquals("disk", attributes(d.config().nbdSocket()).group().getName());
            assertEquals("rw-------", mode(d.config().controlSocket()), "the control socket stays the daemon's");
        }
        try (Daemon d = Daemon.start(config(run, "disk", null), "test")) {
            assertEquals("rw-rw----", mode(d.config().nbdSocket()), "the same directory, again");
        }
    }

    @Test
    void anExistingRunDirectoryMustAlreadyBeTheGroups() throws Exception {
        Path owner = Files.createDirectory(dir.resolve("owner-only"));
        chmod("rwx------", owner);
        String message = assertThrows(IOException.class, () -> Daemon.start(config(owner, "disk", null), "test"))
                .getMessage();
        assertEquals(
                "run directory " + owner + " has mode 0700 and group root, not 0710 and group disk (--nbd-group:"
                        + " the group reaches nbd.sock through it): chgrp disk and chmod 0710 it if it is the daemon's own, or"
                        + " give a new one",
                message);
        assertEquals("rwx------", mode(owner), "left as it was");

        Path other = Files.createDirectory(dir.resolve("other-group"));
        chmod("rwx--x---", other);
        Files.getFileAttributeView(other, java.nio.file.attribute.PosixFileAttributeView.class)
                .setGroup(other.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByGroupName("users"));
        assertThrows(IOException.class, () -> Daemon.start(config(other, "disk", null), "test"));
        assertEquals("users", attributes(other).group().getName(), "left as it was");
        assertThrows(
                IOException.class,
                () -> Daemon.start(config(other, null, null), "test"),
                "without --nbd-group only 0700 will do");
    }

    @Test
    void aMissingGroupOrTlsFileRefusesTheStartBeforeAnythingIsMade() throws Exception {
        Path run = dir.resolve("never");
        assertEquals(
                "--nbd-group: there is no group named no-such-group",
                assertThrows(IOException.class, () -> Daemon.start(config(run, "no-such-group", null), "test"))
                        .getMessage());
        Path cert = dir.resolve("cert.pem");
        assertEquals(
                "TLS certificate " + cert + ": no such file",
                assertThrows(
                                IOException.class,
                                () -> Daemon.start(
                                        config(
                                                run,
                                                null,
                                                new DaemonConfig.Tls(
                                                        cert, dir.resolve("key.pem"), null, NbdTls.Mode.REQUIRE)),
                                        "test"))
                        .getMessage());
        assertFalse(Files.exists(run));
    }
}
