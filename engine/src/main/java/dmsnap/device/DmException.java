package dmsnap.device;

import dmsnap.ffm.Errno;
import java.util.Objects;

/**
 * A device-mapper control operation that failed: the errno the ioctl would return (EINVAL,
 * EBUSY, ENXIO) and the kernel's reason.
 */
public final class DmException extends Exception {
    private static final long serialVersionUID = 1L;
    private final Errno errno;

    public DmException(Errno errno, String message) {
        super(message);
        this.errno = Objects.requireNonNull(errno, "errno");
    }

    public DmException(Errno errno, String message, Throwable cause) {
        super(message, cause);
        this.errno = Objects.requireNonNull(errno, "errno");
    }

    public Errno errno() {
        return errno;
    }
}
