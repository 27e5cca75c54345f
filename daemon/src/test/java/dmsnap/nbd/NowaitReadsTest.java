package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The reader's rule for trying reads from the page cache: large reads never, a run of misses backs off. */
class NowaitReadsTest {
    /** How many of the next {@code reads} 4 KiB reads are tried, each try missing. */
    private static int triedOfMissing(NowaitReads rule, int reads) {
        int tried = 0;
        for (int i = 0; i < reads; i++) {
            if (rule.shouldTry(4096)) {
                tried++;
                rule.missed();
            }
        }
        return tried;
    }

    @Test
    void readsUpToTheBoundAreTried() {
        NowaitReads rule = new NowaitReads();
        assertTrue(rule.shouldTry(4096));
        assertTrue(rule.shouldTry(NowaitReads.MAX_BYTES));
        assertFalse(rule.shouldTry(NowaitReads.MAX_BYTES + 512));
    }

    @Test
    void aRunOfMissesSkipsTheNextReadsThenTriesAgain() {
        NowaitReads rule = new NowaitReads();
        int cycle = NowaitReads.MISSES_TO_BACK_OFF + NowaitReads.SKIPPED_AFTER_MISSES;
        assertEquals(NowaitReads.MISSES_TO_BACK_OFF, triedOfMissing(rule, cycle));
        assertEquals(2 * NowaitReads.MISSES_TO_BACK_OFF, triedOfMissing(rule, 2 * cycle), "a cold workload, for good");
        assertTrue(rule.shouldTry(4096), "a new cycle begins with a try");
    }

    @Test
    void aServedReadEndsTheRun() {
        NowaitReads rule = new NowaitReads();
        for (int round = 0; round < 10; round++) {
            for (int i = 0; i < NowaitReads.MISSES_TO_BACK_OFF - 1; i++) {
                assertTrue(rule.shouldTry(4096));
                rule.missed();
            }
            assertTrue(rule.shouldTry(4096));
            rule.served();
        }
        assertTrue(rule.shouldTry(4096), "never a run long enough to back off");
    }

    @Test
    void largeReadsNeitherTryNorCountDownTheBackOff() {
        NowaitReads rule = new NowaitReads();
        triedOfMissing(rule, NowaitReads.MISSES_TO_BACK_OFF);
        assertFalse(rule.shouldTry(1 << 20));
        assertEquals(0, triedOfMissing(rule, NowaitReads.SKIPPED_AFTER_MISSES), "the whole back-off still to go");
        assertTrue(rule.shouldTry(4096));
    }
}
