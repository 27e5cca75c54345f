package dmsnap.ffm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.jextract.linux.Linux;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.net.SocketException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Errno by number, by name, by text, and the errno an I/O exception carries. */
class ErrnoTest {
    @Test
    void connectionRefusedIsTheHeadersWithItsText() {
        assertEquals(Linux.ECONNREFUSED(), Errno.ECONNREFUSED.value());
        assertEquals(Errno.ECONNREFUSED, Errno.of(Linux.ECONNREFUSED()));
        assertEquals("Connection refused", Errno.ECONNREFUSED.text());
    }

    @Test
    void byNameAndByText() {
        assertEquals(Errno.EBUSY, Errno.named("EBUSY"));
        assertEquals(Errno.UNKNOWN, Errno.named("ENOTANERRNO"));
        assertEquals(Errno.UNKNOWN, Errno.named(null));
        assertEquals(Errno.EBUSY, Errno.withText("Device or resource busy"));
        assertEquals(Errno.UNKNOWN, Errno.withText("something else"));
        assertEquals(Errno.UNKNOWN, Errno.withText(null));
    }

    @Test
    void theErrnoOfAnExceptionIsItsOwnOrTheOneItsStrerrorTextNames() {
        Path p = Path.of("/x");
        assertEquals(Errno.EBUSY, Errno.of(new ErrnoException("flock", Errno.EBUSY, p, -1, -1)));
        assertEquals(Errno.UNKNOWN, Errno.of(new ErrnoException("open", 4095, p, -1, -1)));
        assertEquals(Errno.EACCES, Errno.of(new AccessDeniedException("/x")));
        assertEquals(Errno.ENOENT, Errno.of(new NoSuchFileException("/x")));
        assertEquals(Errno.ENOSPC, Errno.of(new FileSystemException("/x", null, "No space left on device")));
        // What the JDK throws at connect on a Unix socket: no errno, strerror's text.
        assertEquals(Errno.EACCES, Errno.of(new BindException("Permission denied")));
        assertEquals(Errno.ENOENT, Errno.of(new SocketException("No such file or directory")));
        assertEquals(Errno.ENOTDIR, Errno.of(new SocketException("Not a directory")));
        assertEquals(Errno.ECONNREFUSED, Errno.of(new ConnectException("Connection refused")));
        // Any other exception's message is its own words.
        assertEquals(Errno.UNKNOWN, Errno.of(new IOException("Permission denied")));
        assertEquals(Errno.UNKNOWN, Errno.of(new IOException("the daemon closed the connection without an answer")));
    }
}
