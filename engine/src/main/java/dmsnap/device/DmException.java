package dmsnap.device;

/**
 * A device-mapper control operation that failed: the errno name the ioctl would return
 * ("EINVAL", "EBUSY", "ENXIO") and the kernel's reason.
 */
public final class DmException extends Exception {
    private static final long serialVersionUID = 1L;
    private final String errno;

    public DmException(String errno, String message) {
        super(message);
        this.errno = errno;
    }

    public DmException(String errno, String message, Throwable cause) {
        super(message, cause);
        this.errno = errno;
    }

    public String errno() {
        return errno;
    }
}
