package dmsnap.cli;

import java.io.PrintWriter;

/**
 * {@code dmsnap changed}'s text: one "OFFSET LENGTH" line per extent, in bytes, written out in
 * blocks as they come (a line at a time would be a write a line: the output flushes at every
 * line end).
 */
final class ChangedLines implements ChangedPrinter {
    private static final int BLOCK_CHARS = 1 << 16;
    private static final String NEWLINE = System.lineSeparator();
    private final PrintWriter out;
    private final StringBuilder block = new StringBuilder(BLOCK_CHARS + 64);
    private boolean started;

    ChangedLines(PrintWriter out) {
        this.out = out;
    }

    @Override
    public boolean started() {
        return started;
    }

    @Override
    public void start(String device, String since, long sizeBytes) {
        started = true;
    }

    @Override
    public void extent(long offsetBytes, long lengthBytes) {
        block.append(offsetBytes).append(' ').append(lengthBytes).append(NEWLINE);
        if (block.length() >= BLOCK_CHARS) {
            out.append(block);
            block.setLength(0);
        }
    }

    @Override
    public void end(long changedBytes) {
        out.append(block);
        block.setLength(0);
    }

    /** The lines so far are the answer so far. */
    @Override
    public void cutShort() {
        end(0);
    }
}
