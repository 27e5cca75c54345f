package dmsnap.table;

import dmsnap.ffm.Errno;
import java.util.Objects;

/**
 * A table that cannot be loaded, with the kernel's sentence and the errno the load returns
 * (usually EINVAL). {@code target} names the target type whose constructor refused it, or is
 * null for a table-level error.
 */
public final class TableLoadException extends Exception {
    private static final long serialVersionUID = 1L;

    private final Errno errno;
    private final String target;

    public TableLoadException(String target, String message, Errno errno) {
        super(message);
        this.target = target;
        this.errno = Objects.requireNonNull(errno, "errno");
    }

    public TableLoadException(String target, String message) {
        this(target, message, Errno.EINVAL);
    }

    public Errno errno() {
        return errno;
    }

    public String target() {
        return target;
    }
}
