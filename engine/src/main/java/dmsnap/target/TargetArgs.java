package dmsnap.target;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.table.TableLoadException;
import java.io.IOException;
import java.util.List;

/** A cursor over a target's arguments that fails with the constructor's own sentences. */
public final class TargetArgs {
    private final String target;
    private final List<String> args;
    private int next;

    public TargetArgs(String target, List<String> args) {
        this.target = target;
        this.args = List.copyOf(args);
    }

    public int size() {
        return args.size();
    }

    public int remaining() {
        return args.size() - next;
    }

    /** The next word. */
    public String next() {
        if (next >= args.size()) {
            throw new IllegalStateException("no argument left");
        }
        return args.get(next++);
    }

    /**
     * The next word as an unsigned decimal (kstrtoull), or {@code message} as the error; also
     * past 2^63 - 1, which no sector or count reaches.
     */
    public long nextUnsigned(String message) throws TableLoadException {
        String word = next();
        String digits = word.startsWith("+") ? word.substring(1) : word;
        if (digits.isEmpty() || digits.length() > 19 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw fail(message);
        }
        try {
            return Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw fail(message);
        }
    }

    public TableLoadException fail(String message) {
        return new TableLoadException(target, message);
    }

    public TableLoadException fail(String message, Errno errno) {
        return new TableLoadException(target, message, errno);
    }

    /**
     * A device argument that could not be opened: {@code message} with the errno the kernel's
     * {@code dm_get_device} passes on for a device the caller may not open (EACCES, e.g. a
     * daemon running as a user without access to it); EINVAL otherwise.
     */
    public TableLoadException failDevice(String message, IOException cause) {
        return fail(message, permissionDenied(cause) ? Errno.EACCES : Errno.EINVAL);
    }

    private static boolean permissionDenied(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof java.nio.file.AccessDeniedException) {
                return true;
            }
            if (t instanceof ErrnoException errno && (errno.errno() == Errno.EACCES || errno.errno() == Errno.EPERM)) {
                return true;
            }
        }
        return false;
    }
}
