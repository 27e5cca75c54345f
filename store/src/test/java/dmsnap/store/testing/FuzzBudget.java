package dmsnap.store.testing;

import java.time.Duration;

/**
 * How long a seeded fuzzer runs: at most {@code dmsnap.tests.<name>Cases} cases and
 * {@code dmsnap.tests.<name>Millis} milliseconds (each fuzzer gives its defaults, small enough for
 * the default suite), both multiplied by {@code dmsnap.tests.fuzzScale} (default 1). That one knob
 * makes every fuzzer run longer: {@code -Ddmsnap.tests.fuzzScale=20}. The clock never stops a run
 * before {@link #MIN_CASES} cases, so that a busy machine still runs a meaningful number and
 * nothing a fuzzer asserts depends on how fast the machine is.
 *
 * @param name   the fuzzer's property prefix, e.g. {@code cowFuzz}
 * @param cases  the most cases to run
 * @param millis the most time to spend starting new cases
 */
public record FuzzBudget(String name, int cases, long millis) {
    public static final String SCALE_PROPERTY = "dmsnap.tests.fuzzScale";
    /** Cases run whatever the clock says (unless the count allows fewer). */
    public static final int MIN_CASES = 50;

    public static FuzzBudget of(String name, int defaultCases, long defaultMillis) {
        double scale = scale();
        long cases = Math.round(Integer.getInteger("dmsnap.tests." + name + "Cases", defaultCases) * scale);
        long millis = Math.round(Long.getLong("dmsnap.tests." + name + "Millis", defaultMillis) * scale);
        return new FuzzBudget(name, (int) Math.min(Integer.MAX_VALUE, Math.max(1, cases)), Math.max(1, millis));
    }

    /** {@code dmsnap.tests.fuzzScale}, 1 unless given. */
    public static double scale() {
        String given = System.getProperty(SCALE_PROPERTY, "").trim();
        double scale = given.isEmpty() ? 1 : Double.parseDouble(given);
        if (!(scale > 0)) {
            throw new IllegalArgumentException(SCALE_PROPERTY + " must be positive: " + given);
        }
        return scale;
    }

    /** A run of the fuzzer, started now. */
    public Clock start() {
        return new Clock(System.nanoTime());
    }

    /**
     * A hang guard for the whole run (the time budget plus a generous margin for the case under
     * way and the checks after the loop): not a timing assertion, it only turns a hang into a
     * failure that names the case.
     */
    public Duration hangGuard() {
        return Duration.ofMillis(millis).plusMinutes(5);
    }

    /** The run's clock. */
    public final class Clock {
        private final long startNanos;

        private Clock(long startNanos) {
            this.startNanos = startNanos;
        }

        /** Whether case number {@code done} (0-based) may start. */
        public boolean more(int done) {
            return done < cases && (done < MIN_CASES || System.nanoTime() - startNanos < millis * 1_000_000);
        }

        public long elapsedMillis() {
            return (System.nanoTime() - startNanos) / 1_000_000;
        }
    }
}
