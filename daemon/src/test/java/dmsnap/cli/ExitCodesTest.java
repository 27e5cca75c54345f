package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The one errno → exit status mapping of the CLI. */
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
    void everyErrnoHasOneStatus() {
        for (Errno errno : Errno.values()) {
            assertEquals(SPECIAL.getOrDefault(errno, ExitCodes.FAILED), ExitCodes.ofErrno(errno), errno.name());
        }
        assertEquals(ExitCodes.FAILED, ExitCodes.ofErrno(Errno.UNKNOWN), "a name this build does not know");
    }

    @Test
    void aConnectionThatFailsIsPermissionDeniedOrNoDaemon() {
        assertEquals(ExitCodes.PERMISSION, ExitCodes.ofConnect(Errno.EACCES));
        assertEquals(ExitCodes.PERMISSION, ExitCodes.ofConnect(Errno.EPERM));
        for (Errno errno : List.of(Errno.ENOENT, Errno.ECONNREFUSED, Errno.ENOTDIR, Errno.EIO, Errno.UNKNOWN)) {
            assertEquals(ExitCodes.NO_DAEMON, ExitCodes.ofConnect(errno), errno.name());
        }
        // What the JDK throws at connect on a Unix socket: no errno, strerror's text.
        assertEquals(ExitCodes.PERMISSION, ExitCodes.ofConnect(Errno.of(new BindException("Permission denied"))));
        assertEquals(ExitCodes.NO_DAEMON, ExitCodes.ofConnect(Errno.of(new ConnectException("Connection refused"))));
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
