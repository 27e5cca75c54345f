package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class WarningLimitTest {
    @Test
    void aBurstPassesThenTheRateAndTheLeftOutAreCounted() {
        AtomicLong now = new AtomicLong();
        WarningLimit limit = new WarningLimit(3, 2, now::get);
        for (int i = 0; i < 3; i++) {
            assertEquals("", limit.allow(), "within the burst");
        }
        for (int i = 0; i < 5; i++) {
            assertNull(limit.allow(), "over the burst, same instant");
        }
        now.addAndGet(500_000_000L); // half a second at 2 per second: one more
        assertEquals(" (5 more client warnings left out before this one)", limit.allow());
        assertNull(limit.allow());
        now.addAndGet(60_000_000_000L); // a quiet minute refills only up to the burst
        assertEquals(" (1 more client warnings left out before this one)", limit.allow());
        assertEquals("", limit.allow());
        assertEquals("", limit.allow());
        assertNull(limit.allow());
    }
}
