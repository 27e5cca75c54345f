package dmsnap.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.testing.Seeds;
import java.util.Random;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The occupancy bitmap against a set of micro-groups, at every resolution its budget gives it. */
@ExtendWith(Seeds.class)
class OccupancyTest {

    /**
     * What a walk relies on: no marked micro-group is skipped (none lies in {@code [m, next)}),
     * and {@code next} is the limit or in a marked bit's stretch.
     */
    private static void assertWalkable(Occupancy o, TreeSet<Long> model, long m, long limit) {
        long next = o.next(m, limit);
        Long marked = model.ceiling(m);
        long expected = marked == null || marked >= limit ? limit : marked;
        assertTrue(
                next >= m && next <= expected,
                "next(" + m + ", " + limit + ") = " + next + ", a mark at " + expected + " " + o);
        assertTrue(next == limit || o.marked(next), "next " + next + " is marked " + o);
    }

    @Test
    void marksAreNeverLostAsTheBitmapGrowsAndCoarsens() {
        Random random = Seeds.random("occupancy");
        for (int round = 0; round < 30; round++) {
            long budget = 64L << random.nextInt(8); // 64 .. 8192 bits
            long span = 1L << (10 + random.nextInt(29)); // micro-groups up to 2^38
            Occupancy o = new Occupancy(0, 0);
            TreeSet<Long> model = new TreeSet<>();
            for (int i = 0; i < 500; i++) {
                // mostly ascending (a bitmap that grows), sometimes anywhere below
                long m = random.nextInt(4) == 0
                        ? random.nextLong(span)
                        : Math.min(span - 1, i * (span / 500) + random.nextLong(1 + span / 500));
                o = o.mark(m, budget);
                model.add(m);
                assertTrue(o.bits() <= Math.max(64, budget), "bits " + o.bits() + " over the budget " + budget);
                assertTrue(o.marked(m));
            }
            for (long m : model) {
                assertTrue(o.marked(m), "micro-group " + m + " lost " + o);
            }
            assertEquals(Occupancy.finestShift(model.last(), budget), o.shift, "as fine as the budget allows");
            for (int q = 0; q < 2000; q++) {
                long m = random.nextLong(span + 100);
                assertWalkable(o, model, m, m + 1 + random.nextLong(span));
            }
            // A walk from one marked micro-group to the next skips none.
            long previous = -1;
            for (long m : model) {
                long next = o.next(previous + 1, span + 1);
                assertTrue(next <= m, "from " + (previous + 1) + " to " + next + " skips " + m);
                previous = m;
            }
        }
    }

    @Test
    void aFinerBitmapHoldsTheSameMarks() {
        Occupancy coarse = Occupancy.covering(1 << 20, 1 << 10);
        Occupancy fine = Occupancy.covering(1 << 20, 1 << 21);
        assertEquals(11, coarse.shift);
        assertEquals(0, fine.shift);
        for (long m = 5; m < 1 << 20; m += 77_777) {
            coarse.set(m);
            fine.set(m);
        }
        for (long m = 0; m < 1 << 20; m += 1 << 11) {
            boolean any = false;
            for (long k = m; k < m + (1 << 11); k++) {
                any |= fine.marked(k);
            }
            assertEquals(any, coarse.marked(m), "stretch at " + m);
        }
    }
}
