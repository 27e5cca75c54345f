package dmsnap.store;

import dmsnap.ffm.Errno;
import java.io.IOException;
import java.util.Objects;

/**
 * A COW whose metadata cannot be used: bad magic, unknown version, bad chunk size, an exception
 * table the loader cannot trust. The message is the kernel's sentence where it has one; the
 * errno is the one the kernel's store returns for it (ENXIO for a bad magic, EIO for metadata
 * past the end of the COW, which the kernel fails to read), EINVAL for the rest.
 */
public final class CorruptStoreException extends IOException {
    private static final long serialVersionUID = 1L;

    private final Errno errno;

    public CorruptStoreException(String message) {
        this(Errno.EINVAL, message);
    }

    public CorruptStoreException(Errno errno, String message) {
        super(message);
        this.errno = Objects.requireNonNull(errno, "errno");
    }

    /** What the table load (or merge) that met this damage fails with. */
    public Errno errno() {
        return errno;
    }
}
