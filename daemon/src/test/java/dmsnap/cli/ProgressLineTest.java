package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class ProgressLineTest {
    @Test
    void rendersPercentBarRateAndEta() {
        assertEquals(
                "cow read  50% [###############---------------]     1.0 MiB/s  ETA 0:01",
                ProgressLine.render("cow read", 1 << 20, 2 << 20, 1_000_000_000L));
        assertEquals(
                "x 100% [##############################]     2.0 MiB/s  ETA 0:00",
                ProgressLine.render("x", 2 << 20, 2 << 20, 1_000_000_000L));
    }
}
