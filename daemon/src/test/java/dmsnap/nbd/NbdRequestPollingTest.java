package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Polling for a queue-depth-1 client's next request ({@link RequestPolling}). The server-level
 * tests use a window of an hour, so that whether a poll finds the next request never depends on
 * how quick the client or the machine is: after a request done inline the reader polls until the
 * next one comes or the connection ends.
 */
@Timeout(120)
class NbdRequestPollingTest {
    private static final long HOUR = TimeUnit.HOURS.toNanos(1);

    @TempDir
    Path dir;

    NbdFixture fx;

    @AfterEach
    void stop() throws Exception {
        if (fx != null) {
            fx.close();
        }
    }

    private NbdFixture serve(long pollNanos) throws Exception {
        fx = new NbdFixture(
                dir,
                new NbdServer.Settings(Duration.ofMinutes(1), 1024, 16, 64L << 20, new ManualClock())
                        .withPollNanos(pollNanos),
                null);
        return fx;
    }

    private static void assumeTwoCpus() {
        assumeTrue(Runtime.getRuntime().availableProcessors() >= 2, "polling leaves one CPU unpolled: none on one");
    }

    /**
     * The first request is handed on, the second done inline; from the third on each is found by
     * the poll after the one before, reads and writes alike, with the right data (the socket is
     * back in blocking mode for the payloads and replies).
     */
    @Test
    void aQueueDepthOneClientsRequestsAreFoundByPolling() throws Exception {
        assumeTwoCpus();
        serve(HOUR);
        byte[] expected = NbdFixture.pattern(NbdFixture.SECTORS);
        int requests = 2 * NbdConnection.LOOK_AHEAD_EVERY + 5;
        try (NbdTestClient c = fx.open("snap", true)) {
            for (int i = 0; i < requests; i++) {
                int offset = (int) (i * 37L % (NbdFixture.SECTORS - 16)) * 512;
                if (i % 3 == 1) {
                    byte[] data = new byte[8192];
                    Arrays.fill(data, (byte) (i + 3));
                    assertEquals(0, c.write(offset, data));
                    System.arraycopy(data, 0, expected, offset, data.length);
                } else {
                    assertArrayEquals(Arrays.copyOfRange(expected, offset, offset + 4096), c.read(offset, 4096));
                }
            }
        }
        fx.close(); // the connection has ended: every poll is counted
        assertEquals(requests - 2, fx.server.polledRequests());
        fx = null;
    }

    /** With a window of 0 no connection polls; requests are served as before. */
    @Test
    void aZeroWindowNeverPolls() throws Exception {
        serve(0);
        byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
        long inlineBefore = fx.server.inlineRequests();
        try (NbdTestClient c = fx.open("vol", false)) {
            for (int i = 0; i < 40; i++) {
                int offset = i * 4096;
                assertArrayEquals(Arrays.copyOfRange(base, offset, offset + 4096), c.read(offset, 4096));
            }
        }
        assertEquals(0, fx.server.polledRequests());
        assertEquals(39, fx.server.inlineRequests() - inlineBefore, "still done inline");
    }

    /**
     * A poll never holds up the end of a connection: with the reader polling for an hour, a stop
     * of the server ends the connection (the poll sees the input shut down).
     */
    @Test
    void aStopEndsAConnectionThatPolls() throws Exception {
        assumeTwoCpus();
        serve(HOUR);
        NbdTestClient c = fx.open("vol", true);
        c.read(0, 4096); // handed on
        c.read(4096, 4096); // inline: the reader then polls
        while (fx.server.pollingNow() == 0) {
            Thread.onSpinWait();
        }
        fx.server.close();
        assertTrue(c.closedByServer());
        assertEquals(0, fx.server.pollingNow());
        c.close();
    }

    /** Pipelined requests after polling began: every one answered, in any order, with its data. */
    @Test
    void requestsSentTogetherAfterAPollAreAllServed() throws Exception {
        serve(HOUR);
        byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
        try (NbdTestClient c = fx.open("snap", true)) {
            c.read(0, 4096);
            c.read(4096, 4096);
            long[] offsets = {8192, 65536, 131072, 12288, 4096 * 40, 4096 * 41, 4096 * 42, 4096 * 43};
            for (int round = 0; round < 4; round++) {
                c.sendReads(1000 + 100L * round, offsets, 4096);
                boolean[] seen = new boolean[offsets.length];
                for (int i = 0; i < offsets.length; i++) {
                    NbdTestClient.Reply r = c.reply();
                    assertEquals(0, r.error());
                    int k = (int) (r.cookie() - 1000 - 100L * round);
                    assertFalse(seen[k]);
                    seen[k] = true;
                    int at = (int) offsets[k];
                    assertArrayEquals(Arrays.copyOfRange(base, at, at + 4096), r.data());
                }
                assertArrayEquals(Arrays.copyOfRange(base, 0, 4096), c.read(0, 4096));
            }
        }
    }

    @Test
    void pollingRules() {
        RequestPolling p = new RequestPolling(100_000, 1);
        assertTrue(p.worthPolling(0), "nothing measured yet");
        assertTrue(p.worthPolling(100_000));
        assertFalse(p.worthPolling(100_001), "a client slower than the window is not polled for");
        assertTrue(p.tryStart());
        assertFalse(p.tryStart(), "one poller at a time");
        assertEquals(1, p.polling());
        p.end(true);
        assertEquals(1, p.caught());
        assertTrue(p.tryStart());
        p.end(false);
        assertEquals(1, p.caught());
        assertFalse(new RequestPolling(0, 4).worthPolling(0), "a window of 0: never");
        assertFalse(RequestPolling.forCpus(100_000, 1).worthPolling(0), "one CPU: never");
        RequestPolling four = RequestPolling.forCpus(100_000, 4);
        assertTrue(four.tryStart() && four.tryStart() && four.tryStart());
        assertFalse(four.tryStart(), "one CPU of four left unpolled");
        assertThrows(IllegalArgumentException.class, () -> new RequestPolling(-1, 1));
    }
}
