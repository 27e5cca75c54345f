package dmsnap.cli;

/** A failed step of an LVM-style command: the daemon's answer, already printed; the command exits with {@link #exitCode}. */
final class StepFailed extends Exception {
    private static final long serialVersionUID = 1L;
    final int exitCode;

    StepFailed(int exitCode) {
        super(null, null, false, false);
        this.exitCode = exitCode;
    }
}
