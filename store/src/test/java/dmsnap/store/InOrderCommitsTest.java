package dmsnap.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.store.testing.Seeds;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Commits put back into allocation order, one by one and in runs. */
@ExtendWith(Seeds.class)
class InOrderCommitsTest {

    private static List<Long> range(long first, long count) {
        return LongStream.range(first, first + count).boxed().toList();
    }

    @Test
    void runsThatArriveInAnyOrderComeOutInSequenceOrderOnce() {
        Random random = Seeds.random("in-order-runs");
        for (int round = 0; round < 200; round++) {
            // Cut 0..n-1 into runs of 1..300 (a 1 MiB write of 4 KiB chunks is 256) and shuffle them.
            List<List<Long>> runs = new ArrayList<>();
            long n = 0;
            for (int r = 1 + random.nextInt(40); r > 0; r--) {
                long size = 1 + random.nextInt(random.nextBoolean() ? 2 : 300);
                runs.add(range(n, size));
                n += size;
            }
            Collections.shuffle(runs, random);
            InOrderCommits<Long> inOrder = new InOrderCommits<>();
            List<Long> out = new ArrayList<>();
            for (List<Long> run : runs) {
                out.addAll(
                        run.size() == 1 && random.nextBoolean()
                                ? inOrder.arrive(run.getFirst(), run.getFirst())
                                : inOrder.arrive(run.getFirst(), run));
                assertEquals(out.size(), inOrder.nextExpected(), "everything before nextExpected came out");
            }
            assertEquals(range(0, n), out);
        }
    }

    @Test
    void aSequenceCommittedTwiceIsRefusedAndChangesNothing() {
        InOrderCommits<Long> inOrder = new InOrderCommits<>();
        assertEquals(List.of(), inOrder.arrive(10, range(10, 5))); // parked: 10..14
        assertEquals(range(0, 3), inOrder.arrive(0, range(0, 3)));
        for (long[] twice : new long[][] {{1, 1}, {2, 4}, {12, 1}, {8, 3}, {14, 2}, {9, 10}}) {
            IllegalStateException e = assertThrows(
                    IllegalStateException.class, () -> inOrder.arrive(twice[0], range(twice[0], twice[1])));
            assertEquals(
                    "sequence " + twice[0] + (twice[1] > 1 ? ".." + (twice[0] + twice[1] - 1) : "")
                            + " was committed twice",
                    e.getMessage());
        }
        assertEquals(3, inOrder.nextExpected());
        assertEquals(range(3, 12), inOrder.arrive(3, range(3, 7)));
        assertEquals(15, inOrder.nextExpected());
    }
}
