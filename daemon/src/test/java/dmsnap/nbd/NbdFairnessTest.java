package dmsnap.nbd;

import static dmsnap.nbd.NbdProbe.*;
import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import dmsnap.store.testing.Figures;
import dmsnap.table.TableParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Clients that send large reads and never read the replies take no more than their part of the
 * buffer budget, and a client that reads its replies is served meanwhile: not after the
 * watchdog has closed the others. The server's clock here never moves ({@link ManualClock}), so
 * that nothing in these tests can pass because the watchdog closed a stalled client.
 */
@Timeout(900)
class NbdFairnessTest {
    static final Duration WATCHDOG = Duration.ofSeconds(30);
    /** How long the served client may take, at most: far more than it needs. */
    static final long SERVED_WITHIN_SECONDS = 300;

    static final long BUDGET = 128L << 20;
    static final int STALLED = 20;
    /** The served client's device, written and read back. */
    static final long GOOD_BYTES = 8L << 20;

    @TempDir
    Path dir;

    NbdFixture fx;
    final List<NbdTestClient> stalled = new ArrayList<>();

    @BeforeEach
    void start() throws Exception {
        fx = new NbdFixture(dir, new NbdServer.Settings(WATCHDOG, 1024, 16, BUDGET, new ManualClock()), null);
        fx.dm.create("zeroes", null, TableParser.parse("0 " + (1L << 21) + " zero"));
        Path good = Files.write(dir.resolve("good.img"), new byte[(int) GOOD_BYTES]);
        fx.dm.create("good", null, TableParser.parse("0 " + (GOOD_BYTES >> 9) + " linear " + good + " 0"));
    }

    @AfterEach
    void stop() throws Exception {
        try {
            for (NbdTestClient c : stalled) {
                c.close();
            }
            // Their connections end when sending to a closed socket fails, and give their buffers back.
            assertTrue(
                    eventually(60_000, () -> fx.server.bufferBytesInUse() == 0),
                    "request buffers still in use: " + fx.server.bufferBytesInUse());
            assertTrue(
                    eventually(60_000, () -> fx.server.connectionCount() == 0),
                    "connections left: " + fx.server.connectionCount());
            long high = fx.server.bufferBytesHighWater();
            System.out.printf("buffer high water %s of a %s budget%n", mib(high), mib(BUDGET));
            assertTrue(high <= BUDGET, "high water " + high + " over the budget " + BUDGET);
            assertEquals(0, fx.server.unexpectedErrors(), "the server logged unexpected exceptions");
        } finally {
            fx.close();
        }
    }

    /**
     * Twenty clients each send eight 32 MiB reads (half with structured replies) and never read
     * a reply; they hold all the buffers they may. Then another client writes, reads back and
     * reads again in every way (simple and structured replies, DF, 4 KiB to 1 MiB), 600 requests:
     * it completes, while the stalled clients are all still connected.
     */
    @Test
    void clientsThatNeverReadTheirRepliesDoNotStallTheOthers() throws Exception {
        for (int i = 0; i < STALLED; i++) {
            NbdTestClient c = fx.open("zeroes", i % 2 == 0);
            stalled.add(c);
            for (int k = 0; k < 8; k++) {
                c.sendRead(k, (long) k * MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES);
            }
        }
        assertTrue(
                eventually(60_000, () -> fx.server.bufferBytesInUse() >= BUDGET / 2),
                "the stalled clients hold at least half the budget: " + mib(fx.server.bufferBytesInUse()));
        System.out.printf(
                "%d clients that do not read their replies hold %s of a %s budget%n",
                STALLED, mib(fx.server.bufferBytesInUse()), mib(BUDGET));

        CompletableFuture<Integer> served = CompletableFuture.supplyAsync(
                () -> {
                    try {
                        return servedClient(100);
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                },
                command -> Thread.ofPlatform().start(command));
        int requests;
        try {
            requests = served.get(SERVED_WITHIN_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            served.cancel(true);
            fail("a client that reads its replies was not served while " + STALLED + " clients did not read theirs"
                    + " (buffers in use: " + mib(fx.server.bufferBytesInUse()) + " of " + mib(BUDGET) + ")");
            return;
        } catch (ExecutionException e) {
            fail("the served client failed: " + e.getCause(), e.getCause());
            return;
        }
        // The served client has gone; every stalled client is still connected (the clock stood still).
        assertTrue(
                eventually(60_000, () -> fx.server.connectionCount() == STALLED),
                "connections: " + fx.server.connectionCount());
        System.out.printf(
                "while %d clients did not read their replies, another completed %d requests%n", STALLED, requests);
        Figures.record(
                "nbd.slow-readers",
                STALLED + " clients not reading their replies (watchdog clock stopped): another" + " completed "
                        + requests + " requests, buffers within the budget");
    }

    /**
     * Rounds of: a 1 MiB write (FUA every other round) on a client with simple replies, read back
     * there and on a client with structured replies (in pieces, and with DF), and a 4 KiB write
     * read back on the other. Returns how many requests it made.
     */
    private int servedClient(int rounds) throws Exception {
        byte[] mirror = new byte[(int) GOOD_BYTES];
        Random random = new Random(42);
        int requests = 0;
        try (NbdTestClient simple = fx.open("good", false);
                NbdTestClient chunked = fx.open("good", true)) {
            for (int i = 0; i < rounds; i++) {
                int at = (i % 8) << 20;
                byte[] data = new byte[1 << 20];
                random.nextBytes(data);
                simple.sendWrite(i, at, data, i % 2 == 0);
                assertEquals(0, simple.reply().error(), "round " + i + ": 1 MiB write");
                System.arraycopy(data, 0, mirror, at, data.length);
                assertArrayEquals(data, simple.read(at, data.length), "round " + i + ": read back, simple reply");
                assertArrayEquals(data, chunked.read(at, data.length), "round " + i + ": read back, structured");
                chunked.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 5, at, data.length, null);
                NbdTestClient.Reply df = chunked.reply();
                assertEquals(0, df.error(), "round " + i + ": DF read");
                assertEquals(1, df.chunks(), "round " + i + ": a DF read in one chunk");
                assertArrayEquals(data, df.data(), "round " + i + ": DF read");
                int small = random.nextInt((int) (GOOD_BYTES / 4096)) * 4096;
                byte[] block = new byte[4096];
                random.nextBytes(block);
                assertEquals(0, chunked.write(small, block), "round " + i + ": 4 KiB write");
                System.arraycopy(block, 0, mirror, small, block.length);
                assertArrayEquals(
                        Arrays.copyOfRange(mirror, small, small + 4096),
                        simple.read(small, 4096),
                        "round " + i + ": 4 KiB read back");
                requests += 6;
            }
            simple.disconnect();
            chunked.disconnect();
            assertTrue(simple.closedByServer() && chunked.closedByServer());
        }
        return requests;
    }

    /**
     * While stalled clients hold the shared budget, a request larger than a connection's reserve
     * is streamed through the reserve. Its replies keep the protocol: structured reads come in a
     * chunk per piece and a failed piece ends the reply with its error; a DF read is one chunk; a
     * simple reply whose first piece fails is an error and the connection goes on, one whose later
     * piece fails can no longer report it and the connection is closed (the spec's hard
     * disconnect); a write whose piece fails reads the rest of its payload and replies with the
     * error.
     */
    @Test
    void requestsLargerThanTheReserveAreStreamedWhileTheSharedBudgetIsHeld() throws Exception {
        for (int i = 0; i < 4; i++) {
            NbdTestClient c = fx.open("zeroes", false);
            stalled.add(c);
            for (int k = 0; k < 8; k++) {
                c.sendRead(k, (long) k * MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES);
            }
        }
        assertTrue(
                eventually(60_000, () -> fx.server.bufferBytesInUse() >= BUDGET / 2),
                "the stalled clients hold the shared budget: " + mib(fx.server.bufferBytesInUse()));
        long reserve = fx.server.bufferReserveBytes();
        int length = 1 << 20;
        long chunk = Math.min(reserve, NbdConnection.READ_PIECE_BYTES);
        assertTrue(reserve < length, "the reserve is smaller than the requests: " + reserve);
        // Its last quarter errors, for reads and for writes.
        fx.dm.create("holed", null, TableParser.parse("0 1536 linear " + fx.base + " 0\n1536 512 error\n"));
        fx.dm.create("holedw", null, TableParser.parse("0 1536 linear " + fx.plain + " 0\n1536 512 error\n"));
        byte[] original = Arrays.copyOf(NbdFixture.pattern(NbdFixture.SECTORS), length);

        try (NbdTestClient c = fx.open("vol", true)) {
            c.sendRead(1, 0, length);
            NbdTestClient.Reply r = c.reply();
            assertArrayEquals(original, r.data(), "a streamed read");
            assertEquals(length / chunk, r.dataChunks(), "a chunk per piece");
            c.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 2, 0, length, null);
            r = c.reply();
            assertArrayEquals(original, r.data(), "a streamed DF read");
            assertEquals(1, r.chunks(), "DF: one chunk");
        }
        try (NbdTestClient c = fx.open("holed", true)) {
            c.sendRead(3, 0, length);
            NbdTestClient.Reply r = c.reply();
            assertEquals(NBD_EIO, r.error());
            assertEquals(3 * length / 4 / chunk, r.dataChunks(), "the pieces before the failed one");
            assertEquals(r.dataChunks() + 1, r.chunks(), "then the error");
            c.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 4, 0, length, null);
            assertThrows(java.io.IOException.class, c::reply, "DF: one chunk begun, then a failed piece: closed");
        }
        try (NbdTestClient c = fx.open("holed", false)) {
            c.sendRead(5, 3 * length / 4, length / 4);
            assertEquals(NBD_EIO, c.reply().error(), "the first piece failed: an error reply");
            assertArrayEquals(Arrays.copyOf(original, 4096), c.read(0, 4096), "the connection goes on");
            c.sendRead(6, 0, length);
            assertThrows(java.io.IOException.class, c::reply, "a later piece failed: closed in the reply's data");
        }
        try (NbdTestClient c = fx.open("holedw", false)) {
            byte[] data = new byte[length];
            new Random(7).nextBytes(data);
            c.sendWrite(7, 0, data, true);
            assertEquals(NBD_EIO, c.reply().error(), "a streamed write with a failed piece");
            assertEquals(0, c.write(0, Arrays.copyOf(data, 4096)), "the connection stayed in sync");
            assertArrayEquals(Arrays.copyOf(data, 4096), c.read(0, 4096));
            assertArrayEquals(Arrays.copyOf(data, length / 2), c.read(0, length / 2), "a streamed write's pieces");
        }
        // The others have gone; the stalled clients are still connected (the clock stood still).
        assertTrue(
                eventually(60_000, () -> fx.server.connectionCount() == 4),
                "connections: " + fx.server.connectionCount());
    }
}
