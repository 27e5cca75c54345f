package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import dmsnap.ffm.Errno;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The NBD server against the protocol: negotiation, flags, every command, concurrency, suspend. */
@Timeout(300)
class NbdServerTest {
    @TempDir
    Path dir;

    NbdFixture fx;

    @BeforeEach
    void start() throws Exception {
        fx = new NbdFixture(dir, Duration.ofSeconds(5));
    }

    @AfterEach
    void stop() throws Exception {
        fx.close();
    }

    @Test
    void goReportsSizeFlagsAndBlockSizes() throws Exception {
        try (NbdTestClient c = fx.open("vol", true)) {
            assertEquals(NbdFixture.SECTORS * 512L, c.exportSize);
            int expected = NBD_FLAG_HAS_FLAGS
                    | NBD_FLAG_SEND_FLUSH
                    | NBD_FLAG_SEND_FUA
                    | NBD_FLAG_SEND_WRITE_ZEROES
                    | NBD_FLAG_CAN_MULTI_CONN
                    | NBD_FLAG_SEND_DF;
            assertEquals(expected, c.transmissionFlags, "snapshot-origin takes no discards: no SEND_TRIM");
            assertEquals(512, c.minimumBlock);
            assertEquals(4096, c.preferredBlock);
            assertEquals(MAX_PAYLOAD_BYTES, c.maximumPayload);
        }
        try (NbdTestClient c = fx.open("lin", false)) {
            assertEquals(2048 * 512L, c.exportSize);
            assertTrue((c.transmissionFlags & NBD_FLAG_SEND_TRIM) != 0, "linear takes discards");
            assertEquals(0, c.transmissionFlags & NBD_FLAG_SEND_DF, "no DF without structured replies");
        }
    }

    /**
     * A queue-depth-1 client (each request sent once the reply before it came) has every request
     * after its first done on the connection's thread: its reply is begun before the client can
     * send the next one, so the next one always comes alone, whatever the timing. Structured and
     * simple replies, and past the look ahead, which finds nothing queued.
     */
    @Test
    void queueDepthOneRequestsAreDoneInline() throws Exception {
        byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
        int requests = 3 * NbdConnection.LOOK_AHEAD_EVERY;
        for (boolean structured : new boolean[] {true, false}) {
            long before = fx.server.inlineRequests();
            try (NbdTestClient c = fx.open("vol", structured)) {
                for (int i = 0; i < requests; i++) {
                    long offset = (i * 37L % NbdFixture.SECTORS) * 512;
                    assertArrayEquals(
                            Arrays.copyOfRange(base, (int) offset, (int) offset + 4096), c.read(offset, 4096));
                }
            }
            assertEquals(requests - 1, fx.server.inlineRequests() - before, "structured " + structured);
        }
    }

    /**
     * A client with requests already queued behind the one done inline is caught by the look
     * ahead: the queued one goes to the I/O threads. Queue-depth-1 requests until the next one
     * done inline is a look-ahead one, then two reads in one socket write: the first inline, the
     * second not; nor is any of a later pair: a client seen to queue needs a long run of requests
     * that came alone before one is done inline again.
     */
    @Test
    void requestsQueuedBehindAnInlineOneAreHandedOn() throws Exception {
        byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
        long before = fx.server.inlineRequests();
        try (NbdTestClient c = fx.open("vol", true)) {
            c.read(0, 4096); // the first request is handed on
            while ((fx.server.inlineRequests() - before + 1) % NbdConnection.LOOK_AHEAD_EVERY != 0) {
                c.read(4096, 4096);
            }
            long inline = fx.server.inlineRequests();
            long[] offsets = {8192, 16384};
            for (int round = 0; round < 2; round++) {
                c.sendReads(100 + 2 * round, offsets, 4096);
                for (int i = 0; i < offsets.length; i++) {
                    NbdTestClient.Reply r = c.reply();
                    assertEquals(0, r.error());
                    int at = (int) offsets[(int) (r.cookie() - 100 - 2 * round)];
                    assertArrayEquals(Arrays.copyOfRange(base, at, at + 4096), r.data());
                }
            }
            assertEquals(inline + 1, fx.server.inlineRequests(), "only the first of the first pair is done inline");
        }
    }

    @Test
    void listInfoUnknownAndDefaultExport() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
            assertEquals(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, c.greeting());
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_LIST, new byte[0]);
            Set<String> names = new HashSet<>();
            NbdTestClient.OptionReply r;
            while ((r = c.optionReply()).type() == NBD_REP_SERVER) {
                ByteBuffer d = ByteBuffer.wrap(r.data());
                byte[] name = new byte[d.getInt()];
                d.get(name);
                names.add(new String(name, StandardCharsets.UTF_8));
            }
            assertEquals(NBD_REP_ACK, r.type());
            assertEquals(Set.of("vol", "snap", "lin"), names);

            r = c.go(NBD_OPT_INFO, "nosuch", NBD_INFO_BLOCK_SIZE);
            assertEquals(NBD_REP_ERR_UNKNOWN, r.type());
            assertTrue(r.text().contains("no device named 'nosuch'"), r.text());
            r = c.go(NBD_OPT_INFO, "", NBD_INFO_BLOCK_SIZE);
            assertEquals(NBD_REP_ERR_UNKNOWN, r.type(), "three devices and no --default-export");
            assertTrue(r.text().contains("name one"), r.text());
            r = c.go(NBD_OPT_INFO, "snap", NBD_INFO_NAME, NBD_INFO_DESCRIPTION);
            assertEquals(NBD_REP_ACK, r.type());
            assertEquals(NbdFixture.SECTORS * 512L, c.exportSize);
            c.option(NBD_OPT_STARTTLS, new byte[0]);
            assertEquals(NBD_REP_ERR_POLICY, c.optionReply().type());
            c.option(NBD_OPT_ABORT, new byte[0]);
            assertEquals(NBD_REP_ACK, c.optionReply().type());
            assertTrue(c.closedByServer());
        }
        assertEquals(0, fx.dm.get("snap").info().openCount(), "INFO does not keep the device open");
    }

    @Test
    void theDefaultExportIsTheNamedOne() throws Exception {
        fx.close();
        fx = new NbdFixture(
                dir.resolve("d2"),
                new NbdServer.Settings(Duration.ofSeconds(5), 16, 4, 64L << 20, new ManualClock()),
                "snap");
        try (NbdTestClient c = fx.open("", true)) {
            assertEquals(NbdFixture.SECTORS * 512L, c.exportSize);
            assertEquals(1, fx.dm.get("snap").info().openCount());
        }
    }

    @Test
    void exportNameWithAndWithoutZeroes() throws Exception {
        for (boolean noZeroes : new boolean[] {true, false}) {
            try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
                c.greeting();
                c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0));
                c.option(NBD_OPT_EXPORT_NAME, "lin".getBytes(StandardCharsets.UTF_8));
                ByteBuffer b = c.read(noZeroes ? 10 : 134);
                assertEquals(2048 * 512L, b.getLong());
                assertTrue((b.getShort() & NBD_FLAG_HAS_FLAGS) != 0);
                byte[] data = c.read(0, 4096);
                assertArrayEquals(new byte[4096], data);
            }
        }
        try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
            c.greeting();
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_EXPORT_NAME, "nosuch".getBytes(StandardCharsets.UTF_8));
            assertTrue(c.closedByServer(), "EXPORT_NAME of an unknown export: the spec says hang up");
        }
    }

    @Test
    void originWritesThroughNbdLeaveTheSnapshotViewAlone() throws Exception {
        for (boolean structured : new boolean[] {false, true}) {
            try (NbdTestClient vol = fx.open("vol", structured);
                    NbdTestClient snap = fx.open("snap", structured)) {
                long at = structured ? 1 << 20 : 2 << 20;
                byte[] data = new byte[64 * 1024];
                Arrays.fill(data, (byte) 0x5a);
                vol.sendWrite(9, at, data, true);
                NbdTestClient.Reply w = vol.reply();
                assertEquals(9, w.cookie());
                assertEquals(0, w.error());
                assertArrayEquals(data, vol.read(at, data.length));
                byte[] old = snap.read(at, data.length);
                for (int i = 0; i < old.length; i += 512) {
                    assertEquals(NbdFixture.original(at + i), old[i]);
                }
                assertEquals(0, vol.command(NBD_CMD_FLUSH, 0, 0, 0));
                // Zeroes are writes too: the snapshot keeps the old chunk.
                long z = at + (1 << 19);
                assertEquals(0, vol.command(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, z, 8192));
                assertArrayEquals(new byte[8192], vol.read(z, 8192));
                assertEquals(NbdFixture.original(z), snap.read(z, 512)[0]);
                vol.disconnect();
                assertTrue(vol.closedByServer());
            }
        }
        assertEquals(0, fx.dm.get("vol").info().openCount());
    }

    /**
     * The shape of a large structured read's reply does not depend on the thread that sends it: a
     * read sent alone (which may run on the connection's thread) and reads sent together (which run
     * on the I/O threads) both come as one data chunk per piece; a failed piece ends the reply with
     * its error after the pieces before it; with DF the reply is one chunk.
     */
    @Test
    void largeStructuredReadsComeInPiecesAndAFailedPieceEndsTheReplyWithItsError() throws Exception {
        long piece = NbdConnection.READ_PIECE_BYTES;
        int length = 1 << 20;
        int pieces = (int) (length / piece);
        byte[] expected = Arrays.copyOfRange(NbdFixture.pattern(NbdFixture.SECTORS), 1 << 20, (1 << 20) + length);
        try (NbdTestClient c = fx.open("vol", true)) {
            for (NbdTestClient.Reply r : reads(c, 0, 1 << 20, length)) {
                assertArrayEquals(expected, r.data(), "read " + r.cookie());
                assertEquals(pieces, r.chunks(), "one data chunk per piece, the last one DONE");
                assertEquals(pieces, r.dataChunks());
            }
            for (NbdTestClient.Reply r : reads(c, NBD_CMD_FLAG_DF, 1 << 20, length)) {
                assertArrayEquals(expected, r.data(), "DF read " + r.cookie());
                assertEquals(1, r.chunks(), "DF: one chunk");
            }
        }
        try (NbdTestClient c = fx.open("vol", false)) {
            for (NbdTestClient.Reply r : reads(c, 0, 1 << 20, length)) {
                assertArrayEquals(expected, r.data(), "simple replies: one piece");
            }
        }
        // The last quarter of this device errors: the reply ends with its error after the good pieces.
        fx.dm.create(
                "holed", null, dmsnap.table.TableParser.parse("0 1536 linear " + fx.base + " 0\n1536 512 error\n"));
        try (NbdTestClient c = fx.open("holed", true)) {
            for (NbdTestClient.Reply r : reads(c, 0, 0, length)) {
                assertEquals(NBD_EIO, r.error(), "read " + r.cookie());
                assertNull(r.data());
                assertEquals(pieces, r.chunks(), "three data chunks, then the error chunk");
                assertEquals(pieces - 1, r.dataChunks());
            }
            for (NbdTestClient.Reply r : reads(c, NBD_CMD_FLAG_DF, 0, length)) {
                assertEquals(NBD_EIO, r.error(), "DF read " + r.cookie());
                assertEquals(1, r.chunks(), "DF: the error chunk alone");
            }
            assertArrayEquals(Arrays.copyOf(NbdFixture.pattern(8), 4096), c.read(0, 4096), "the connection goes on");
        }
    }

    /** Three reads one at a time, then three sent together; their replies in the order they came. */
    private static java.util.List<NbdTestClient.Reply> reads(NbdTestClient c, int flags, long offset, int length)
            throws Exception {
        java.util.List<NbdTestClient.Reply> replies = new java.util.ArrayList<>();
        for (int i = 0; i < 3; i++) {
            c.request(flags, NBD_CMD_READ, i, offset, length, null);
            replies.add(c.reply());
            assertEquals(i, replies.getLast().cookie());
        }
        for (int i = 3; i < 6; i++) {
            c.request(flags, NBD_CMD_READ, i, offset, length, null);
        }
        Set<Long> cookies = new HashSet<>();
        for (int i = 3; i < 6; i++) {
            replies.add(c.reply());
            cookies.add(replies.getLast().cookie());
        }
        assertEquals(Set.of(3L, 4L, 5L), cookies);
        return replies;
    }

    @Test
    void trimReachesALinearDevice() throws Exception {
        try (NbdTestClient c = fx.open("lin", true)) {
            byte[] data = new byte[8192];
            Arrays.fill(data, (byte) 7);
            assertEquals(0, c.write(4096, data));
            assertEquals(0, c.command(NBD_CMD_TRIM, 0, 4096, 8192));
            assertArrayEquals(new byte[8192], c.read(4096, 8192));
        }
        try (NbdTestClient c = fx.open("vol", true)) {
            c.request(0, NBD_CMD_TRIM, 5, 0, 4096, null);
            NbdTestClient.Reply r = c.reply();
            assertEquals(NBD_EINVAL, r.error());
            assertTrue(r.message().contains("TRIM is not supported"), r.message());
        }
    }

    @Test
    void manyRequestsInFlightAllGetTheirReply() throws Exception {
        try (NbdTestClient c = fx.open("snap", true)) {
            int n = 200;
            for (int i = 0; i < n; i++) {
                c.sendRead(1000 + i, (long) i * 4096, 4096);
            }
            Set<Long> cookies = new HashSet<>();
            for (int i = 0; i < n; i++) {
                NbdTestClient.Reply r = c.reply();
                assertEquals(0, r.error());
                long offset = (r.cookie() - 1000) * 4096;
                assertEquals(NbdFixture.original(offset), r.data()[0]);
                cookies.add(r.cookie());
            }
            assertEquals(n, cookies.size());
        }
    }

    /**
     * Replies of every shape queued at once, which the writer gathers into shared socket writes
     * where it can (simple replies, one-chunk reads) and sends alone where not (error chunks with
     * their message, reads in pieces): each request gets its one whole reply.
     */
    @Test
    void queuedRepliesOfEveryShapeGoOutWhole() throws Exception {
        byte[] base = NbdFixture.pattern(NbdFixture.SECTORS);
        long end = NbdFixture.SECTORS * 512L;
        for (boolean structured : new boolean[] {true, false}) {
            try (NbdTestClient c = fx.open("snap", structured)) {
                int n = 100;
                for (int i = 0; i < n; i++) {
                    long cookie = 1000 + i;
                    switch (i % 5) {
                        case 0, 1 -> c.sendRead(cookie, (long) i * 4096, 4096);
                        case 2 -> c.sendRead(cookie, end, 4096); // beyond the end: refused
                        case 3 -> c.sendWrite(cookie, end / 2 + (long) i * 4096, new byte[4096], false);
                        default -> c.sendRead(cookie, (long) i * 4096, 1 << 20); // in pieces when structured
                    }
                }
                Set<Long> cookies = new HashSet<>();
                for (int i = 0; i < n; i++) {
                    NbdTestClient.Reply r = c.reply();
                    int at = (int) (r.cookie() - 1000);
                    assertTrue(cookies.add(r.cookie()), "one reply for " + r.cookie());
                    switch (at % 5) {
                        case 2 -> {
                            assertEquals(NBD_EINVAL, r.error(), "read beyond the end");
                            assertEquals(structured, r.message() != null, "a message with structured replies");
                        }
                        case 3 -> assertEquals(0, r.error(), "write");
                        default -> {
                            assertEquals(0, r.error());
                            int length = at % 5 == 4 ? 1 << 20 : 4096;
                            assertArrayEquals(
                                    Arrays.copyOfRange(base, at * 4096, at * 4096 + length), r.data(), "read " + at);
                            if (structured && length == 1 << 20) {
                                assertEquals(4, r.dataChunks(), "a 1 MiB read in four pieces");
                            }
                        }
                    }
                }
                assertEquals(n, cookies.size());
            }
        }
        assertEquals(0, fx.server.unexpectedErrors());
    }

    @Test
    void aSuspendedDeviceParksRequestsUntilResume() throws Exception {
        try (NbdTestClient c = fx.open("snap", false)) {
            fx.dm.get("snap").suspend();
            CompletableFuture<NbdTestClient.Reply> reply = CompletableFuture.supplyAsync(() -> {
                try {
                    c.sendRead(77, 0, 4096);
                    return c.reply();
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            // The request is parked on the suspended device, not failed and not answered.
            dmsnap.device.MappedDevice snap = fx.dm.get("snap");
            assertTrue(
                    NbdProbe.eventually(60_000, () -> snap.parkedIo() == 1),
                    "the read never reached the suspended device");
            assertFalse(reply.isDone(), "parked while suspended");
            fx.dm.get("snap").resume();
            NbdTestClient.Reply r = reply.get(60, TimeUnit.SECONDS);
            assertEquals(0, r.error(), "latency, not an error");
            assertEquals(NbdFixture.original(0), r.data()[0]);
        }
    }

    @Test
    void aReadOnlyTableIsAReadOnlyExport() throws Exception {
        fx.dm.create("ro", null, dmsnap.table.TableParser.parse("0 2048 linear " + fx.base + " 0"), true);
        assertTrue(fx.dm.get("ro").info().dmsetupText().contains("State:             ACTIVE (READ-ONLY)"));
        try (NbdTestClient c = fx.open("ro", true)) {
            assertEquals(
                    NBD_FLAG_HAS_FLAGS
                            | NBD_FLAG_READ_ONLY
                            | NBD_FLAG_SEND_FLUSH
                            | NBD_FLAG_SEND_FUA
                            | NBD_FLAG_CAN_MULTI_CONN
                            | NBD_FLAG_SEND_DF,
                    c.transmissionFlags);
            assertEquals(NbdFixture.original(4096), c.read(4096, 512)[0]);
            c.sendWrite(4, 4096, new byte[512], false);
            NbdTestClient.Reply w = c.reply();
            assertEquals(NBD_EPERM, w.error());
            assertTrue(w.message().contains("ro is read-only"), w.message());
            assertEquals(NBD_EPERM, c.command(NBD_CMD_WRITE_ZEROES, 0, 0, 4096));
            assertEquals(NBD_EPERM, c.command(NBD_CMD_TRIM, 0, 0, 4096));
            assertEquals(0, c.command(NBD_CMD_FLUSH, 0, 0, 0));
            assertEquals(NbdFixture.original(4096), c.read(4096, 512)[0], "nothing was written");
        }
        var e = assertThrows(
                java.io.IOException.class,
                () -> fx.dm.get("ro")
                        .submit(dmsnap.target.IoRequest.write(
                                0, java.lang.foreign.Arena.ofAuto().allocate(512, 512), false)));
        assertTrue(e.getMessage().contains("read-only"), e.getMessage());
    }

    @Test
    void anOpenExportCannotBeRemoved() throws Exception {
        try (NbdTestClient c = fx.open("lin", false)) {
            assertEquals(1, fx.dm.get("lin").info().openCount());
            var e = assertThrows(dmsnap.device.DmException.class, () -> fx.dm.remove("lin", false));
            assertEquals(Errno.EBUSY, e.errno());
            assertEquals(0, c.write(0, new byte[512]));
        }
        // The server gives the device back after the client has gone: wait for it.
        dmsnap.device.MappedDevice lin = fx.dm.get("lin");
        assertTrue(
                NbdProbe.eventually(60_000, () -> lin.info().openCount() == 0),
                "lin still open a minute after its client closed: " + lin.info().openCount());
        fx.dm.remove("lin", false);
    }
}
