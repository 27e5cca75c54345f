package dmsnap.ffm;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A failed system call, in one shape:
 * {@code pwrite(path=/dev/loop0, offset=1048576, length=4096) failed: EIO (Input/output error)}.
 * Offset and length are -1 where they do not apply and then left out of the message.
 */
public final class ErrnoException extends IOException {
    private static final long serialVersionUID = 1L;

    private final String syscall;
    private final int errnoValue;
    private final transient Path path;
    private final long offsetBytes;
    private final long lengthBytes;

    public ErrnoException(String syscall, int errnoValue, Path path, long offsetBytes, long lengthBytes) {
        this(syscall, errnoValue, path, offsetBytes, lengthBytes, null);
    }

    /** With {@code detail}, a short clause appended after the errno text (": held by another process"). */
    public ErrnoException(
            String syscall, int errnoValue, Path path, long offsetBytes, long lengthBytes, String detail) {
        super(format(syscall, errnoValue, path, offsetBytes, lengthBytes, detail));
        this.syscall = Objects.requireNonNull(syscall);
        this.errnoValue = errnoValue;
        this.path = path;
        this.offsetBytes = offsetBytes;
        this.lengthBytes = lengthBytes;
    }

    public ErrnoException(String syscall, Errno errno, Path path, long offsetBytes, long lengthBytes) {
        this(syscall, errno.value(), path, offsetBytes, lengthBytes, null);
    }

    public String syscall() {
        return syscall;
    }

    public Errno errno() {
        return Errno.of(errnoValue);
    }

    public int errnoValue() {
        return errnoValue;
    }

    /** The file the call was about, or null. */
    public Path path() {
        return path;
    }

    public long offsetBytes() {
        return offsetBytes;
    }

    public long lengthBytes() {
        return lengthBytes;
    }

    static String format(String syscall, int errnoValue, Path path, long offsetBytes, long lengthBytes, String detail) {
        return context(syscall, path, offsetBytes, lengthBytes) + " failed: " + Errno.describe(errnoValue)
                + (detail == null ? "" : ": " + detail);
    }

    /** {@code pwrite(path=/dev/loop0, offset=1048576, length=4096)}. */
    static String context(String syscall, Path path, long offsetBytes, long lengthBytes) {
        StringBuilder sb = new StringBuilder(syscall).append('(');
        String sep = "";
        if (path != null) {
            sb.append("path=").append(path);
            sep = ", ";
        }
        if (offsetBytes >= 0) {
            sb.append(sep).append("offset=").append(offsetBytes);
            sep = ", ";
        }
        if (lengthBytes >= 0) {
            sb.append(sep).append("length=").append(lengthBytes);
        }
        return sb.append(')').toString();
    }
}
