package dmsnap.store.testing;

import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * The seed of randomised tests: {@code -Ddmsnap.tests.seed=N} when given, else one picked per JVM.
 * Register as an extension ({@code @ExtendWith(Seeds.class)}) to have a failing test print the line
 * that reproduces it. Derive every random choice, including each thread's, from {@link #random}.
 */
public final class Seeds implements TestWatcher {
    private static final long SEED = pick();

    public Seeds() {}

    private static long pick() {
        String given = System.getProperty("dmsnap.tests.seed", "");
        return given.isBlank() ? new SplittableRandom().nextLong() : Long.parseLong(given.trim());
    }

    public static long seed() {
        return SEED;
    }

    /** A generator for one purpose; the same {@code salt} gives the same sequence for one seed. */
    public static Random random(String salt) {
        return new Random(SEED ^ ((long) salt.hashCode() << 32 | (salt.length() & 0xffffffffL)));
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        System.err.println("reproduce with -Ddmsnap.tests.seed=" + SEED + " (" + context.getDisplayName() + ")");
    }
}
