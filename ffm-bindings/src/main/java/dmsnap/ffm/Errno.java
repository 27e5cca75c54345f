package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;
import dmsnap.ffm.internal.Syscalls;
import dmsnap.jextract.linux.Linux;
import java.io.IOException;
import java.net.SocketException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.util.HashMap;
import java.util.Map;
import java.util.function.IntSupplier;

/**
 * The errno values dmsnap names, with the platform's number (from the generated bindings) and
 * the C library's text, cached when this enum initialises. {@link #UNKNOWN} stands for any
 * other value; {@link ErrnoException#errnoValue()} keeps the raw number.
 */
public enum Errno {
    EPERM(Linux::EPERM),
    ENOENT(Linux::ENOENT),
    EINTR(Linux::EINTR),
    EIO(Linux::EIO),
    ENXIO(Linux::ENXIO),
    EBADF(Linux::EBADF),
    EAGAIN(Linux::EAGAIN),
    ENOMEM(Linux::ENOMEM),
    EACCES(Linux::EACCES),
    EFAULT(Linux::EFAULT),
    ENOTBLK(Linux::ENOTBLK),
    EBUSY(Linux::EBUSY),
    EEXIST(Linux::EEXIST),
    EXDEV(Linux::EXDEV),
    ENODEV(Linux::ENODEV),
    ENOTDIR(Linux::ENOTDIR),
    EISDIR(Linux::EISDIR),
    EINVAL(Linux::EINVAL),
    ENFILE(Linux::ENFILE),
    EMFILE(Linux::EMFILE),
    ENOTTY(Linux::ENOTTY),
    ETXTBSY(Linux::ETXTBSY),
    EFBIG(Linux::EFBIG),
    ENOSPC(Linux::ENOSPC),
    ESPIPE(Linux::ESPIPE),
    EROFS(Linux::EROFS),
    EPIPE(Linux::EPIPE),
    ERANGE(Linux::ERANGE),
    ENAMETOOLONG(Linux::ENAMETOOLONG),
    ENOLCK(Linux::ENOLCK),
    ENOSYS(Linux::ENOSYS),
    ELOOP(Linux::ELOOP),
    ENODATA(Linux::ENODATA),
    EOVERFLOW(Linux::EOVERFLOW),
    EOPNOTSUPP(Linux::EOPNOTSUPP),
    ECONNRESET(Linux::ECONNRESET),
    ETIMEDOUT(Linux::ETIMEDOUT),
    ECONNREFUSED(Linux::ECONNREFUSED),
    ESTALE(Linux::ESTALE),
    EDQUOT(Linux::EDQUOT),
    ENOMEDIUM(Linux::ENOMEDIUM),
    ECANCELED(Linux::ECANCELED),
    EREMOTEIO(Linux::EREMOTEIO),
    /** A value this enum does not name. */
    UNKNOWN(() -> -1);

    private static final Map<Integer, Errno> BY_VALUE = new HashMap<>();

    static {
        for (Errno e : values()) {
            if (e != UNKNOWN) {
                // EWOULDBLOCK == EAGAIN and ENOTSUP == EOPNOTSUPP on Linux: first name wins.
                BY_VALUE.putIfAbsent(e.value, e);
            }
        }
    }

    private final int value;
    private final String text;

    Errno(IntSupplier value) {
        LinuxConstants.requireSupportedPlatform();
        this.value = value.getAsInt();
        this.text = this.value < 0 ? "Unknown error" : Syscalls.strerror(this.value);
    }

    /** The platform's number; -1 for {@link #UNKNOWN}. */
    public int value() {
        return value;
    }

    /** The C library's text, e.g. "Input/output error". */
    public String text() {
        return text;
    }

    public static Errno of(int value) {
        return BY_VALUE.getOrDefault(value, UNKNOWN);
    }

    /** The errno called {@code name} ("EBUSY"); {@link #UNKNOWN} for a name this enum does not have. */
    public static Errno named(String name) {
        for (Errno e : values()) {
            if (e.name().equals(name)) {
                return e;
            }
        }
        return UNKNOWN;
    }

    /** The errno whose C library text is {@code text} ("Device or resource busy"); {@link #UNKNOWN} for none. */
    public static Errno withText(String text) {
        for (Errno e : values()) {
            if (e != UNKNOWN && e.text.equals(text)) {
                return e;
            }
        }
        return UNKNOWN;
    }

    /**
     * The errno {@code e} carries, or {@link #UNKNOWN} when it names none: an {@link
     * ErrnoException}'s own; the JDK's file and socket exceptions carry only strerror's text (a
     * {@link FileSystemException}'s reason, or its type for a missing file or a refused access; a
     * Unix socket's connect fails with a {@link SocketException} whose message is that text). Any
     * other exception's message is its own words, not strerror's.
     */
    public static Errno of(IOException e) {
        return switch (e) {
            case ErrnoException n -> n.errno();
            case AccessDeniedException a -> EACCES;
            case NoSuchFileException n -> ENOENT;
            case FileSystemException f -> withText(f.getReason());
            case SocketException s -> withText(s.getMessage());
            default -> UNKNOWN;
        };
    }

    /** "EIO (Input/output error)"; for an unnamed value "errno 123 (its strerror text)". */
    static String describe(int value) {
        Errno e = of(value);
        return e == UNKNOWN ? "errno " + value + " (" + Syscalls.strerror(value) + ")" : e.name() + " (" + e.text + ")";
    }
}
