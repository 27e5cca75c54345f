package dmsnap.store;

import java.util.Arrays;

/**
 * Which 16-chunk micro-groups of an {@link ExceptionTable} may hold exceptions, so that a walk in
 * origin order skips the empty ones without probing the table. Bit b stands for the micro-groups
 * {@code [b << shift, (b + 1) << shift)}: set once one of them got a run, never cleared (a merge
 * that empties one leaves its bit set, which costs a walk one probe). The bits cover micro-groups
 * 0 to the highest one marked, at most {@code budget} of them: over a large origin with few
 * exceptions, {@code shift} grows and a bit stands for a longer stretch (a walk then probes each
 * micro-group of a set bit's stretch).
 *
 * <p>Written under the table's write lock only: {@link #mark} sets bits in place, or, to cover a
 * higher micro-group, returns a copy that holds the same bits (coarser when the budget says so);
 * a reader with this object in hand never sees a bit go away or an array change size.
 */
final class Occupancy {
    /** Micro-groups per bit: {@code 1 << shift}. */
    final int shift;

    private final long[] words;

    Occupancy(int shift, int words) {
        this.shift = shift;
        this.words = new long[words];
    }

    /** The smallest shift at which micro-groups 0 .. {@code micro} fit in {@code budget} bits. */
    static int finestShift(long micro, long budget) {
        int shift = 0;
        while ((micro >>> shift) >= budget) {
            shift++;
        }
        return shift;
    }

    /** An empty occupancy covering micro-groups 0 .. {@code micro} as finely as {@code budget} bits allow. */
    static Occupancy covering(long micro, long budget) {
        int shift = finestShift(micro, budget);
        return new Occupancy(shift, words((micro >>> shift) + 1));
    }

    private static int words(long bits) {
        return (int) ((bits + 63) >>> 6);
    }

    /** Bits this occupancy can hold before it must grow. */
    long bits() {
        return (long) words.length << 6;
    }

    long bytes() {
        return 16L + 8L * words.length;
    }

    /**
     * Marks micro-group {@code micro}: this occupancy, its bit set; or, when {@code micro} is beyond
     * what it covers, a larger copy (to at most {@code budget} bits, by doubling, and coarser when
     * the budget cannot cover it at this shift) with every bit of this one and {@code micro}'s.
     */
    Occupancy mark(long micro, long budget) {
        if ((micro >>> shift) >= bits()) {
            return grown(micro, budget).mark(micro, budget);
        }
        set(micro);
        return this;
    }

    /** Marks micro-group {@code micro}, which this occupancy covers. */
    void set(long micro) {
        long bit = micro >>> shift;
        words[(int) (bit >>> 6)] |= 1L << bit;
    }

    private Occupancy grown(long micro, long budget) {
        int to = Math.max(shift, finestShift(micro, budget));
        long needed = (micro >>> to) + 1;
        long bits = Math.max(needed, Math.min(2 * (bits() >>> (to - shift)), budget));
        Occupancy grown = new Occupancy(to, words(bits));
        if (to == shift) {
            System.arraycopy(words, 0, grown.words, 0, words.length);
            return grown;
        }
        for (int w = 0; w < words.length; w++) {
            for (long word = words[w]; word != 0; word &= word - 1) {
                long b = ((long) w << 6 | Long.numberOfTrailingZeros(word)) >>> (to - shift);
                grown.words[(int) (b >>> 6)] |= 1L << b;
            }
        }
        return grown;
    }

    /** Whether micro-group {@code micro} may hold exceptions. */
    boolean marked(long micro) {
        long bit = micro >>> shift;
        return bit < bits() && (words[(int) (bit >>> 6)] & (1L << bit)) != 0;
    }

    /** The first micro-group in {@code [micro, limit)} that may hold exceptions, or {@code limit}. */
    long next(long micro, long limit) {
        long bit = micro >>> shift;
        if (bit >= bits()) {
            return limit;
        }
        int w = (int) (bit >>> 6);
        long word = words[w] & (-1L << bit);
        while (word == 0) {
            if (++w == words.length || ((long) w << 6 << shift) >= limit) {
                return limit;
            }
            word = words[w];
        }
        long found = ((long) w << 6 | Long.numberOfTrailingZeros(word)) << shift;
        return Math.min(limit, Math.max(micro, found));
    }

    @Override
    public String toString() {
        return "Occupancy[shift=" + shift + ", bits=" + bits() + ", marked="
                + Arrays.stream(words).map(Long::bitCount).sum() + "]";
    }
}
