package dmsnap.snapshot;

/** A load or resume the handover rules refuse; the message is the kernel's sentence. */
final class HandoverException extends Exception {
    private static final long serialVersionUID = 1L;

    HandoverException(String message) {
        super(message);
    }
}
