package dmsnap.cli;

/** Exit statuses of the {@code dmsnap} command, in one place (values from sysexits.h where one fits). */
public final class ExitCodes {
    public static final int OK = 0;
    /** A command failed (dmsetup's "Command failed."). */
    public static final int FAILED = 1;
    /** Wrong arguments or options. */
    public static final int USAGE = 2;
    /** The machine cannot run dmsnap (OS/architecture the bindings were not generated for). */
    public static final int UNSUPPORTED_PLATFORM = 70;

    private ExitCodes() {
    }
}
