package dmsnap.store.testing;

import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.util.Random;

/** Recognisable test data: random bytes from a seed, and comparisons that say where they differ. */
public final class Patterns {
    private Patterns() {}

    /** Fills {@code segment} with bytes from {@code random}. */
    public static void fill(MemorySegment segment, Random random) {
        long n = segment.byteSize();
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            segment.set(JAVA_LONG_UNALIGNED, i, random.nextLong());
        }
        for (; i < n; i++) {
            segment.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
        }
    }

    /** Null when equal, else "first difference at byte N of M". */
    public static String difference(MemorySegment expected, MemorySegment actual) {
        if (expected.byteSize() != actual.byteSize()) {
            return "sizes differ: " + expected.byteSize() + " vs " + actual.byteSize();
        }
        long at = expected.mismatch(actual);
        return at < 0 ? null : "first difference at byte " + at + " of " + expected.byteSize();
    }

    public static boolean isZero(MemorySegment segment) {
        long n = segment.byteSize();
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            if (segment.get(JAVA_LONG_UNALIGNED, i) != 0) {
                return false;
            }
        }
        for (; i < n; i++) {
            if (segment.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i) != 0) {
                return false;
            }
        }
        return true;
    }
}
