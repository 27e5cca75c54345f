package dmsnap.cli;

import dmsnap.control.ChangedExtents;

/** Prints a {@code changed} answer as it comes ({@link ChangedCommand}). */
interface ChangedPrinter extends ChangedExtents {
    /** Whether the answer has started: the daemon was reached and took the request. */
    boolean started();

    /** The answer ended before its end (a failure, a broken connection): print what can be printed of it. */
    void cutShort();
}
