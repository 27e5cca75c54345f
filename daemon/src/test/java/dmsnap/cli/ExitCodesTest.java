package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.net.SocketException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The one errno → exit status mapping of the CLI, and the errno a failed call or connect carries. */
class ExitCodesTest {
    /** dmsetup's statuses for the errnos that have one; every other errno is "the command failed". */
    private static final Map<Errno, Integer> SPECIAL = Map.of(
            Errno.ENXIO,
            ExitCodes.NO_DEVICE,
            Errno.ENODEV,
            ExitCodes.NO_DEVICE,
            Errno.EBUSY,
            ExitCodes.BUSY,
            Errno.EACCES,
            ExitCodes.PERMISSION,
            Errno.EPERM,
            ExitCodes.PERMISSION);

    @Test
    void everyErrnoTheDaemonCanSendHasOneStatusAndItsStrerrorText() {
        // The daemon sends the name of any Errno (a failed open or write names its own), "EIO" for one it cannot name.
        for (Errno errno : Errno.values()) {
            if (errno == Errno.UNKNOWN) {
                continue;
            }
            assertEquals(SPECIAL.getOrDefault(errno, ExitCodes.FAILED), ExitCodes.ofErrno(errno.name()), errno.name());
            assertEquals(errno.text(), ExitCodes.text(errno.name()), errno.name());
        }
        assertEquals(ExitCodes.FAILED, ExitCodes.ofErrno("ENOTANERRNO"), "a name this build does not know");
        assertEquals("ENOTANERRNO", ExitCodes.text("ENOTANERRNO"), "is shown as it came");
    }

    @Test
    void aConnectionThatFailsIsPermissionDeniedOrNoDaemon() {
        assertEquals(ExitCodes.PERMISSION, ExitCodes.ofConnect("EACCES"));
        assertEquals(ExitCodes.PERMISSION, ExitCodes.ofConnect("EPERM"));
        for (String errno : new String[] {"ENOENT", "ECONNREFUSED", "ENOTDIR", "EIO", null}) {
            assertEquals(ExitCodes.NO_DAEMON, ExitCodes.ofConnect(errno), errno);
        }
    }

    @Test
    void theErrnoOfAnExceptionIsItsOwnOrTheOneItsTextNames() {
        Path p = Path.of("/x");
        assertEquals("EBUSY", ExitCodes.errnoOf(new ErrnoException("flock", Errno.EBUSY, p, -1, -1)));
        assertEquals("EACCES", ExitCodes.errnoOf(new AccessDeniedException("/x")));
        assertEquals("ENOENT", ExitCodes.errnoOf(new NoSuchFileException("/x")));
        // What the JDK throws at connect on a Unix socket: no errno, strerror's text.
        assertEquals("EACCES", ExitCodes.errnoOf(new BindException("Permission denied")));
        assertEquals("ENOENT", ExitCodes.errnoOf(new SocketException("No such file or directory")));
        assertEquals("ENOTDIR", ExitCodes.errnoOf(new SocketException("Not a directory")));
        assertEquals("ECONNREFUSED", ExitCodes.errnoOf(new ConnectException("Connection refused")));
        assertEquals(null, ExitCodes.errnoOf(new IOException("the daemon closed the connection without an answer")));
    }

    @Test
    void aCommandEndedByAnExceptionExitsWithItsErrnosStatus() {
        Path p = Path.of("/x");
        assertEquals(ExitCodes.PERMISSION, ExitCodes.of(new AccessDeniedException("/x")));
        assertEquals(ExitCodes.PERMISSION, ExitCodes.of(new ErrnoException("open", Errno.EPERM, p, -1, -1)));
        assertEquals(ExitCodes.BUSY, ExitCodes.of(new ErrnoException("flock", Errno.EBUSY, p, -1, -1)));
        assertEquals(ExitCodes.NO_DEVICE, ExitCodes.of(new ErrnoException("open", Errno.ENXIO, p, -1, -1)));
        assertEquals(ExitCodes.FAILED, ExitCodes.of(new NoSuchFileException("/x")));
        assertEquals(
                ExitCodes.FAILED, ExitCodes.of(new IllegalArgumentException("/x does not exist; give --cow-size")));
        assertEquals(
                ExitCodes.FAILED, ExitCodes.of(new IOException("another dmsnap daemon (pid 1) holds /run/dmsnap")));
    }
}
