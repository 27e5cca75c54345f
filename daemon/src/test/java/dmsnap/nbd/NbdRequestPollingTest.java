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
 * tests use a window of an hour and never let a poll end because another thread wants the CPU,
 * so that whether a poll finds the next request never depends on how quick the client or the
 * machine is: after a request done inline the reader polls until the next one comes or the
 * connection ends.
 */
@Timeout(120)
class NbdRequestPollingTest {
    private static final long HOUR = TimeUnit.HOURS.toNanos(1);
    /** A yield never counts as the CPU wanted: a poll lasts its window whatever else runs. */
    private static final long NEVER_BUSY = Long.MAX_VALUE;

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
                        .withPolling(pollNanos, NEVER_BUSY),
                null);
        return fx;
    }

    /** Waits until {@code n} connections poll (each polls until its client sends or leaves). */
    private void awaitPolling(int n) throws InterruptedException {
        while (fx.server.pollingNow() < n) {
            Thread.sleep(1);
        }
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
        awaitPolling(1);
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
        RequestPolling p = new RequestPolling(100_000, 20_000, 1);
        RequestPolling.Reader r = p.reader();
        assertTrue(r.shouldPoll(), "nothing measured yet");
        r.waited(100_000);
        assertTrue(r.shouldPoll());
        r.waited(100_001);
        assertFalse(r.shouldPoll(), "a client slower than the window is not polled for");
        r.waited(20_000);
        assertTrue(r.shouldPoll(), "nor again once it is quick");
        r.polled(NbdChannel.Poll.ARRIVED);
        assertEquals(1, p.caught());
        r.polled(NbdChannel.Poll.NOTHING);
        assertEquals(1, p.caught());
        r.polled(NbdChannel.Poll.CPU_WANTED);
        for (int i = 0; i < RequestPolling.BUSY_SKIPS; i++) {
            assertFalse(r.shouldPoll(), "the CPU was wanted: skip " + i);
        }
        assertTrue(r.shouldPoll(), "then try again");
        assertTrue(p.reader().shouldPoll(), "another connection's polls are its own");
        assertFalse(new RequestPolling(0, 20_000, 4).reader().shouldPoll(), "a window of 0: never");
        assertFalse(RequestPolling.forCpus(100_000, 20_000, 1).reader().shouldPoll(), "one CPU: never");
        assertThrows(IllegalArgumentException.class, () -> new RequestPolling(-1, 20_000, 1));
    }

    /** At most maxPollers connections poll at once; the others block at once (the poll is skipped). */
    @Test
    void pollersAreBounded() throws Exception {
        assumeTwoCpus();
        serve(HOUR);
        int max = Runtime.getRuntime().availableProcessors() - 1;
        java.util.List<NbdTestClient> clients = new java.util.ArrayList<>();
        try {
            for (int i = 0; i <= max; i++) {
                NbdTestClient c = fx.open("vol", true);
                clients.add(c);
                c.read(0, 4096);
                c.read(4096, 4096); // inline: its reader polls now, unless max others do
                if (i < max) {
                    awaitPolling(i + 1);
                }
            }
            byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
            // The last client's reader found no place and blocks; it is still served.
            assertArrayEquals(
                    Arrays.copyOfRange(base, 8192, 12288), clients.getLast().read(8192, 4096));
            assertEquals(max, fx.server.pollingNow());
        } finally {
            for (NbdTestClient c : clients) {
                c.close();
            }
        }
    }

    /** A poll on a raw socket: what came, nothing within the window, the end of input, a wanted CPU. */
    @Test
    void aPollSaysWhatItFound() throws Exception {
        java.nio.channels.ServerSocketChannel listener =
                java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX);
        listener.bind(java.net.UnixDomainSocketAddress.of(dir.resolve("poll.sock")));
        try (listener;
                java.nio.channels.SocketChannel client =
                        java.nio.channels.SocketChannel.open(listener.getLocalAddress());
                java.nio.channels.SocketChannel accepted = listener.accept()) {
            NbdChannel channel = new NbdChannel(accepted, "test", HOUR, new ManualClock());
            java.nio.ByteBuffer header = java.nio.ByteBuffer.allocateDirect(32);
            assertEquals(NbdChannel.Poll.NOTHING, channel.pollMessage(header, 0, NEVER_BUSY), "nothing sent");
            assertEquals(NbdChannel.Poll.CPU_WANTED, channel.pollMessage(header, HOUR, 0), "every yield too long");
            client.write(java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3}));
            assertEquals(NbdChannel.Poll.ARRIVED, channel.pollMessage(header, HOUR, NEVER_BUSY));
            assertEquals(3, header.position());
            assertTrue(accepted.isBlocking(), "blocking again for the rest of the message");
            header.clear();
            client.close();
            assertEquals(NbdChannel.Poll.NOTHING, channel.pollMessage(header, HOUR, NEVER_BUSY), "end of input");
            assertFalse(channel.readMessage(header), "the read after sees the end");
        }
    }
}
