package dmsnap.cli;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

/**
 * Exit statuses of the {@code dmsnap} command (values from sysexits.h where one fits), and the
 * one place that turns an errno (the daemon's answer, a failed call, a failed connect) into an
 * exit status and into its text. Every verb goes through it: the plain verbs, the LVM-style
 * verbs' steps, and whatever a command throws (cow tools, daemon, quickstart).
 */
public final class ExitCodes {
    public static final int OK = 0;
    /** A command failed (dmsetup's "Command failed."). */
    public static final int FAILED = 1;
    /** Wrong arguments or options. */
    public static final int USAGE = 2;
    /** No such device (ENXIO, ENODEV: dmsetup's "No such device or address"). */
    public static final int NO_DEVICE = 3;
    /** The device is busy (EBUSY). */
    public static final int BUSY = 4;
    /** Permission denied (EACCES, EPERM): the control socket, or a file or device the daemon may not open. */
    public static final int PERMISSION = 5;
    /** No daemon at the run directory (its control socket missing, refusing connections, or unreachable). */
    public static final int NO_DAEMON = 6;
    /** The machine cannot run dmsnap (OS/architecture the bindings were not generated for). */
    public static final int UNSUPPORTED_PLATFORM = 70;

    /** connect(2)'s errno when nothing listens on a socket file; not among {@link Errno}'s names. */
    static final String ECONNREFUSED = "ECONNREFUSED";

    private static final String ECONNREFUSED_TEXT = "Connection refused";

    private ExitCodes() {}

    /** The exit status of a failure with errno {@code errno} (a name, "EBUSY"); any other than these is FAILED. */
    public static int ofErrno(String errno) {
        return switch (errno == null ? "" : errno) {
            case "ENXIO", "ENODEV" -> NO_DEVICE;
            case "EBUSY" -> BUSY;
            case "EACCES", "EPERM" -> PERMISSION;
            default -> FAILED;
        };
    }

    /**
     * The exit status of a connection to the daemon's control socket that failed with {@code errno}
     * (null: it did not say): refused to this user (EACCES, EPERM), else no daemon there.
     */
    public static int ofConnect(String errno) {
        return ofErrno(errno) == PERMISSION ? PERMISSION : NO_DAEMON;
    }

    /** The C library's text of {@code errno} ("EBUSY": "Device or resource busy"); a name it does not know as it came. */
    public static String text(String errno) {
        if (ECONNREFUSED.equals(errno)) {
            return ECONNREFUSED_TEXT;
        }
        try {
            return Errno.valueOf(errno).text();
        } catch (IllegalArgumentException | NullPointerException e) {
            return String.valueOf(errno); // a daemon of another version may name more
        }
    }

    /**
     * The errno name {@code e} carries, or null when it names none: an {@link ErrnoException}'s own;
     * the JDK's file and socket exceptions carry only strerror's text (a Unix socket's connect
     * fails with a {@link java.net.SocketException} whose message is that text), matched here.
     */
    public static String errnoOf(IOException e) {
        if (e instanceof ErrnoException n) {
            return n.errno() == Errno.UNKNOWN ? null : n.errno().name();
        }
        if (e instanceof AccessDeniedException) {
            return Errno.EACCES.name();
        }
        if (e instanceof NoSuchFileException) {
            return Errno.ENOENT.name();
        }
        String reason = switch (e) {
            case FileSystemException f -> f.getReason();
            case SocketException s -> s.getMessage();
            default -> null; // its own words, not strerror's
        };
        if (reason == null) {
            return null;
        }
        if (e instanceof ConnectException && reason.equals(ECONNREFUSED_TEXT)) {
            return ECONNREFUSED;
        }
        for (Errno errno : Errno.values()) {
            if (errno != Errno.UNKNOWN && errno.text().equals(reason)) {
                return errno.name();
            }
        }
        return null;
    }

    /** The exit status of a command that {@code t} ended: its errno's (see {@link #ofErrno}), else FAILED. */
    public static int of(Throwable t) {
        return t instanceof IOException e ? ofErrno(errnoOf(e)) : FAILED;
    }
}
