package dmsnap.cli;

import dmsnap.ffm.Errno;
import java.io.IOException;

/**
 * Exit statuses of the {@code dmsnap} command (values from sysexits.h where one fits), and the
 * one place that turns an errno (the daemon's answer, a failed call, a failed connect) into an
 * exit status. Every verb goes through it: the plain verbs, the LVM-style verbs' steps, and
 * whatever a command throws (cow tools, daemon, quickstart). The errno of an exception is
 * {@link Errno#of(IOException)}'s, its text {@link Errno#text()}.
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

    private ExitCodes() {}

    /** The exit status of a failure with {@code errno}; any other than these (UNKNOWN too) is FAILED. */
    public static int ofErrno(Errno errno) {
        return switch (errno) {
            case ENXIO, ENODEV -> NO_DEVICE;
            case EBUSY -> BUSY;
            case EACCES, EPERM -> PERMISSION;
            default -> FAILED;
        };
    }

    /**
     * The exit status of a connection to the daemon's control socket that failed with {@code errno}
     * ({@link Errno#UNKNOWN}: it did not say): refused to this user (EACCES, EPERM), else no daemon there.
     */
    public static int ofConnect(Errno errno) {
        return ofErrno(errno) == PERMISSION ? PERMISSION : NO_DAEMON;
    }

    /** The exit status of a command that {@code t} ended: its errno's ({@link Errno#of(IOException)}), else FAILED. */
    public static int of(Throwable t) {
        return t instanceof IOException e ? ofErrno(Errno.of(e)) : FAILED;
    }
}
