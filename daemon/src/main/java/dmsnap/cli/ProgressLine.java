package dmsnap.cli;

import java.io.Console;
import java.io.PrintStream;
import java.util.Locale;

/**
 * A one-line progress bar on the terminal (stderr): percent, bar, MiB/s and ETA, redrawn at
 * most every 200 ms. Only on a terminal; scripts and pipes get nothing. Written here rather
 * than taken from a library because the common Java progress-bar libraries bring jline's
 * native terminal module, and dmsnap runs with native access denied to everything but its own
 * two binding modules.
 */
final class ProgressLine implements AutoCloseable {
    private static final long REDRAW_NANOS = 200_000_000L;
    private static final int WIDTH = 30;

    private final PrintStream out;
    private final String task;
    private final long totalBytes;
    private final long startNanos = System.nanoTime();
    private long lastDraw;
    private long doneBytes;

    private ProgressLine(PrintStream out, String task, long totalBytes) {
        this.out = out;
        this.task = task;
        this.totalBytes = Math.max(1, totalBytes);
    }

    /** A progress line when stderr is a terminal, else null. */
    static ProgressLine onTerminal(String task, long totalBytes) {
        Console console = System.console();
        return console != null && console.isTerminal() ? new ProgressLine(System.err, task, totalBytes) : null;
    }

    void update(long bytesDone) {
        doneBytes = bytesDone;
        long now = System.nanoTime();
        if (now - lastDraw >= REDRAW_NANOS || bytesDone >= totalBytes) {
            lastDraw = now;
            out.print("\r" + render(task, bytesDone, totalBytes, now - startNanos));
            out.flush();
        }
    }

    /** {@code cow read  42% [############------------------]  512.0 MiB/s  ETA 0:03}. */
    static String render(String task, long done, long total, long elapsedNanos) {
        double fraction = Math.min(1.0, (double) done / Math.max(1, total));
        int filled = (int) Math.round(fraction * WIDTH);
        double seconds = Math.max(1e-9, elapsedNanos / 1e9);
        double rate = done / seconds;
        long eta = rate > 0 ? (long) ((total - done) / rate) : 0;
        return String.format(
                Locale.ROOT,
                "%s %3d%% [%s%s] %7.1f MiB/s  ETA %d:%02d",
                task,
                (int) (fraction * 100),
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                rate / (1 << 20),
                eta / 60,
                eta % 60);
    }

    @Override
    public void close() {
        update(doneBytes);
        out.println();
    }
}
