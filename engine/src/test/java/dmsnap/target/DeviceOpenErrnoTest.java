package dmsnap.target;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A device argument that cannot be opened fails the table load with the errno the kernel's
 * dm_get_device passes on: EACCES when the daemon may not open it (so the CLI exits 5, as for
 * "Permission denied"), EINVAL for the rest.
 */
class DeviceOpenErrnoTest {
    private static Errno errno(IOException cause) {
        return new TargetArgs("linear", List.of("x", "0"))
                .failDevice("Device lookup failed", cause)
                .errno();
    }

    @Test
    void permissionDeniedIsEaccesAndTheRestEinval() {
        Path p = Path.of("/dev/loop0");
        assertEquals(Errno.EACCES, errno(new ErrnoException("open", Errno.EACCES, p, -1, -1)));
        assertEquals(Errno.EACCES, errno(new ErrnoException("open", Errno.EPERM, p, -1, -1)));
        assertEquals(Errno.EACCES, errno(new AccessDeniedException(p.toString())));
        assertEquals(
                Errno.EACCES, errno(new IOException("wrapped", new ErrnoException("open", Errno.EACCES, p, -1, -1))));
        assertEquals(Errno.EINVAL, errno(new NoSuchFileException(p.toString())));
        assertEquals(Errno.EINVAL, errno(new ErrnoException("open", Errno.EBUSY, p, -1, -1)));
    }
}
