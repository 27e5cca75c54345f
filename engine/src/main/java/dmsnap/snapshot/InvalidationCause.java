package dmsnap.snapshot;

/**
 * Why a snapshot was invalidated at run time, as the kernel's line says it (spec 7): the
 * phrase after {@code Invalidating snapshot:}, and a short name for metrics.
 */
public enum InvalidationCause {
    /** A copy, a whole-chunk write or a commit failed: the COW (or the origin, read for a copy) gave an error. */
    IO_ERROR("Error reading/writing.", "io_error"),
    /** The COW had no room for a new exception (with {@code PO} only for an origin write's copy). */
    NO_SPACE("Unable to allocate exception.", "cow_full");

    private final String kernelPhrase;
    private final String label;

    InvalidationCause(String kernelPhrase, String label) {
        this.kernelPhrase = kernelPhrase;
        this.label = label;
    }

    /** The kernel's words: {@code Error reading/writing.} or {@code Unable to allocate exception.} */
    public String kernelPhrase() {
        return kernelPhrase;
    }

    /** {@code io_error} or {@code cow_full}. */
    public String label() {
        return label;
    }
}
