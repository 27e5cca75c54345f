package dmsnap.nbd;

import java.util.function.LongSupplier;

/**
 * A bound on how often the server warns about what clients do (broken handshakes, dropped
 * connections, refusals): a hostile or broken client can cause thousands per second, and the log
 * must stay readable and small. At most {@code burst} warnings, refilled at {@code perSecond};
 * the ones left out are counted and reported with the next warning that is let through.
 *
 * <p>Thread-safe; one per server.
 */
final class WarningLimit {
    private final int burst;
    private final double perNano;
    private final LongSupplier nanoTime;
    private double tokens;
    private long last;
    private long suppressed;

    WarningLimit(int burst, double perSecond, LongSupplier nanoTime) {
        this.burst = burst;
        this.perNano = perSecond / 1e9;
        this.nanoTime = nanoTime;
        this.tokens = burst;
        this.last = nanoTime.getAsLong();
    }

    WarningLimit() {
        this(20, 5, System::nanoTime);
    }

    /**
     * Whether to log a warning now. When it is, {@code suffix} is what to append to it: empty, or
     * how many were left out since the last one.
     */
    synchronized String allow() {
        long now = nanoTime.getAsLong();
        tokens = Math.min(burst, tokens + (now - last) * perNano);
        last = now;
        if (tokens < 1) {
            suppressed++;
            return null;
        }
        tokens--;
        String suffix = suppressed == 0 ? "" : " (" + suppressed + " more client warnings left out before this one)";
        suppressed = 0;
        return suffix;
    }
}
