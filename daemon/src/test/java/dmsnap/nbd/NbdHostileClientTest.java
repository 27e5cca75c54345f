package dmsnap.nbd;

import static dmsnap.nbd.NbdProbe.*;
import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import dmsnap.table.TableParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Clients that break the protocol, stall, vanish or crowd in. Each case asserts the spec's
 * answer (the {@code NBD_REP_ERR_*} of an option, the {@code NBD_E*} of a request) or that the
 * server closed the connection, and is followed by a well-behaved client ({@link GoodClient}) on
 * other connections reading and writing correct data. After each test no request buffer is
 * left in use, the high water stayed within the budget and the server logged no unexpected
 * exception. Outcomes are printed as table rows ({@code | case | expected | observed |}).
 *
 * <p>The server's deadlines run on a {@link ManualClock}: no connection is timed out because the
 * machine is slow; a stall is timed out when the test moves the clock past the timeout.
 */
@Timeout(300)
class NbdHostileClientTest {
    /** The message timeout, on {@link #clock}. */
    static final Duration TIMEOUT = Duration.ofMillis(1000);

    static final long BUDGET = 128L << 20;
    static final long LIN_SIZE = 2048 * 512L;
    static final long VOL_SIZE = NbdFixture.SECTORS * 512L;

    @TempDir
    Path dir;

    NbdFixture fx;
    GoodClient good;
    String test;
    /** The budget and timeout of this test's server (tests that need others set them before start). */
    long budget = BUDGET;

    Duration timeout = TIMEOUT;
    /** The server's clock: it moves only when a test moves it. */
    final ManualClock clock = new ManualClock();

    private void start(TestInfo info, NbdServer.Settings settings) throws Exception {
        test = info.getTestMethod().orElseThrow().getName();
        fx = new NbdFixture(dir, settings, null);
        good = new GoodClient(fx);
        good.check("start");
    }

    private void start(TestInfo info) throws Exception {
        start(info, settings(1024, 16));
    }

    private NbdServer.Settings settings(int maxConnections, int ioThreads) {
        return new NbdServer.Settings(timeout, maxConnections, ioThreads, budget, clock);
    }

    @AfterEach
    void stop() throws Exception {
        if (fx == null) {
            return;
        }
        try {
            good.check("the end of " + test);
            good.close();
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() == 0),
                    "request buffers still in use: " + fx.server.bufferBytesInUse());
            long high = fx.server.bufferBytesHighWater();
            System.out.printf(
                    "%s: buffers in use after: %d bytes; high water %s of %s budget; %s%n",
                    test, fx.server.bufferBytesInUse(), mib(high), mib(budget), Memory.now());
            assertTrue(high <= budget, "high water " + high + " over the budget " + budget);
            assertEquals(0, fx.server.unexpectedErrors(), "the server logged unexpected exceptions");
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.connectionCount() == 0),
                    "connections left: " + fx.server.connectionCount());
        } finally {
            fx.close();
        }
    }

    /** Records one outcome as a table row, asserts it, then checks that good clients are unaffected. */
    private void outcome(String name, String expected, String observed) {
        System.out.printf("| %s | %s | %s | %s |%n", test, name, expected, observed);
        assertEquals(expected, observed, name);
        good.check(name);
    }

    // ---- handshake -----------------------------------------------------------------------------

    private NbdTestClient handshake() throws IOException {
        NbdTestClient c = NbdTestClient.connect(fx.server.socketPath());
        c.greeting();
        c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        return c;
    }

    private static void rawOption(NbdTestClient c, long magic, int option, long declaredLength, byte[] data)
            throws IOException {
        c.write(ByteBuffer.allocate(16 + data.length)
                .putLong(magic)
                .putInt(option)
                .putInt((int) declaredLength)
                .put(data)
                .flip());
    }

    /** The reply to one option, checked to answer that option. */
    private static String optionOutcome(NbdTestClient c, int option, byte[] data) throws IOException {
        c.option(option, data);
        NbdTestClient.OptionReply r = c.optionReply();
        assertEquals(option, r.option(), "the reply names the option");
        return rep(r.type());
    }

    /** GO to vol on a connection that has been misused: the negotiation went on and data flows. */
    private static String goesOn(NbdTestClient c) throws IOException {
        NbdTestClient.OptionReply r = c.go(NBD_OPT_GO, "vol", NBD_INFO_BLOCK_SIZE);
        if (r.type() != NBD_REP_ACK) {
            return "GO then " + rep(r.type());
        }
        byte[] data = c.read(4096, 4096);
        for (int i = 0; i < data.length; i += 512) {
            if (data[i] != NbdFixture.original(4096 + i)) {
                return "GO ok but wrong data";
            }
        }
        return "then GO works";
    }

    private static String closed(NbdTestClient c) {
        Closed closed = awaitClosed(c, WAIT_MS);
        return closed.bytesBefore() == 0 ? "closed" : "closed after " + closed.bytesBefore() + " bytes";
    }

    @Test
    void optionErrorsAreAnsweredAndTheNegotiationGoesOn(TestInfo info) throws Exception {
        start(info);
        int[] unknown = {0, 4, 11, 12, 13, 14, 100, 0x7fffffff, 0x80000000, 0xffffffff}; // 9, 10: meta contexts
        try (NbdTestClient c = handshake()) {
            List<String> seen = new ArrayList<>();
            for (int option : unknown) {
                seen.add(optionOutcome(c, option, new byte[] {1, 2, 3}));
            }
            assertEquals(Set.of("NBD_REP_ERR_UNSUP"), new HashSet<>(seen), seen.toString());
            outcome(
                    "unknown options " + Arrays.toString(unknown),
                    "NBD_REP_ERR_UNSUP each, then GO works",
                    seen.getFirst() + " each, " + goesOn(c));
        }
        try (NbdTestClient c = handshake()) {
            String withData = optionOutcome(c, NBD_OPT_LIST, new byte[] {0});
            c.option(NBD_OPT_LIST, new byte[0]);
            int servers = 0;
            NbdTestClient.OptionReply r;
            while ((r = c.optionReply()).type() == NBD_REP_SERVER) {
                servers++;
            }
            outcome(
                    "LIST with data",
                    "NBD_REP_ERR_INVALID, then LIST lists 3",
                    withData + ", then LIST lists " + servers
                            + (r.type() == NBD_REP_ACK ? "" : " and " + rep(r.type())));
        }
        byte[] vol = "vol".getBytes(StandardCharsets.UTF_8);
        record Malformed(String name, byte[] data) {}
        List<Malformed> malformed = List.of(
                new Malformed(
                        "name length past the data",
                        ByteBuffer.allocate(9)
                                .putInt(100)
                                .put(vol)
                                .putShort((short) 0)
                                .array()),
                new Malformed(
                        "name length 2^32-1",
                        ByteBuffer.allocate(9)
                                .putInt(-1)
                                .put(vol)
                                .putShort((short) 0)
                                .array()),
                new Malformed(
                        "info count 2, one request",
                        ByteBuffer.allocate(11)
                                .putInt(3)
                                .put(vol)
                                .putShort((short) 2)
                                .putShort((short) NBD_INFO_BLOCK_SIZE)
                                .array()),
                new Malformed(
                        "info count 0, two bytes more",
                        ByteBuffer.allocate(11)
                                .putInt(3)
                                .put(vol)
                                .putShort((short) 0)
                                .putShort((short) NBD_INFO_BLOCK_SIZE)
                                .array()),
                new Malformed(
                        "odd byte after the requests",
                        ByteBuffer.allocate(12)
                                .putInt(3)
                                .put(vol)
                                .putShort((short) 1)
                                .putShort((short) NBD_INFO_BLOCK_SIZE)
                                .put((byte) 0)
                                .array()),
                new Malformed("5 bytes of data", new byte[5]),
                new Malformed("no data", new byte[0]));
        for (int option : new int[] {NBD_OPT_GO, NBD_OPT_INFO}) {
            for (Malformed m : malformed) {
                try (NbdTestClient c = handshake()) {
                    outcome(
                            optionName(option) + " " + m.name(),
                            "NBD_REP_ERR_INVALID, then GO works",
                            optionOutcome(c, option, m.data()) + ", " + goesOn(c));
                }
            }
        }
        try (NbdTestClient c = handshake()) {
            outcome(
                    "STRUCTURED_REPLY with data",
                    "NBD_REP_ERR_INVALID, then GO works",
                    optionOutcome(c, NBD_OPT_STRUCTURED_REPLY, new byte[1]) + ", " + goesOn(c));
        }
        try (NbdTestClient c = handshake()) {
            outcome(
                    "STRUCTURED_REPLY twice",
                    "NBD_REP_ACK, NBD_REP_ERR_INVALID",
                    optionOutcome(c, NBD_OPT_STRUCTURED_REPLY, new byte[0]) + ", "
                            + optionOutcome(c, NBD_OPT_STRUCTURED_REPLY, new byte[0]));
        }
        try (NbdTestClient c = handshake()) {
            outcome(
                    "STARTTLS",
                    "NBD_REP_ERR_POLICY, then GO works",
                    optionOutcome(c, NBD_OPT_STARTTLS, new byte[0]) + ", " + goesOn(c));
        }
        byte[] big = new byte[100 * 1024];
        for (int option : new int[] {12345, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST}) {
            try (NbdTestClient c = handshake()) {
                outcome(
                        optionName(option) + " with 100 KiB of data",
                        "NBD_REP_ERR_TOO_BIG, then GO works",
                        optionOutcome(c, option, big) + ", " + goesOn(c));
            }
        }
        try (NbdTestClient c = handshake()) {
            outcome(
                    "option with 16 MiB of data (the most skipped)",
                    "NBD_REP_ERR_TOO_BIG, then GO works",
                    optionOutcome(c, 12345, new byte[16 << 20]) + ", " + goesOn(c));
        }
        record Name(String what, byte[] bytes, String expected) {}
        byte[] longest = new byte[MAX_STRING_BYTES];
        Arrays.fill(longest, (byte) 'a');
        byte[] tooLong = new byte[MAX_STRING_BYTES + 1];
        Arrays.fill(tooLong, (byte) 'a');
        List<Name> names = List.of(
                new Name("a 4096-byte name", longest, "NBD_REP_ERR_UNKNOWN"),
                new Name("a 4097-byte name", tooLong, "NBD_REP_ERR_INVALID"),
                new Name("name bytes ff fe", new byte[] {(byte) 0xff, (byte) 0xfe}, "NBD_REP_ERR_INVALID"),
                new Name("an overlong UTF-8 '/'", new byte[] {(byte) 0xc0, (byte) 0xaf}, "NBD_REP_ERR_INVALID"),
                new Name(
                        "a UTF-8 surrogate", new byte[] {(byte) 0xed, (byte) 0xa0, (byte) 0x80}, "NBD_REP_ERR_INVALID"),
                new Name(
                        "a truncated UTF-8 sequence",
                        new byte[] {'v', 'o', (byte) 0xe2, (byte) 0x82},
                        "NBD_REP_ERR_INVALID"));
        for (Name n : names) {
            try (NbdTestClient c = handshake()) {
                byte[] data = ByteBuffer.allocate(6 + n.bytes().length)
                        .putInt(n.bytes().length)
                        .put(n.bytes())
                        .putShort((short) 0)
                        .array();
                outcome(
                        "GO with " + n.what(),
                        n.expected() + ", then GO works",
                        optionOutcome(c, NBD_OPT_GO, data) + ", " + goesOn(c));
            }
        }
        try (NbdTestClient c = handshake()) {
            // A name with control characters comes back (and goes into the log) escaped.
            c.option(NBD_OPT_GO, NbdTestClient.goData("vol\n[] WARN forged\u0000"));
            NbdTestClient.OptionReply r = c.optionReply();
            boolean escaped = r.text().contains("'vol\\u000a[] WARN forged\\u0000'")
                    && !r.text().contains("\n");
            outcome(
                    "GO with a newline and a NUL in the name",
                    "NBD_REP_ERR_UNKNOWN, name escaped",
                    rep(r.type()) + (escaped ? ", name escaped" : ", name as sent: " + r.text()));
        }
        try (NbdTestClient c = handshake()) {
            String abort = optionOutcome(c, NBD_OPT_ABORT, new byte[0]);
            outcome("ABORT", "NBD_REP_ACK, closed", abort + ", " + closed(c));
        }
    }

    @Test
    void handshakeViolationsCloseTheConnection(TestInfo info) throws Exception {
        start(info);
        for (int flags : new int[] {1 << 2, 1 << 31, -1}) {
            try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
                c.greeting();
                c.clientFlags(flags);
                outcome("client flags 0x" + Integer.toHexString(flags), "closed", closed(c));
            }
        }
        try (NbdTestClient c = handshake()) {
            rawOption(c, IHAVEOPT ^ 1, NBD_OPT_LIST, 0, new byte[0]);
            outcome("wrong option magic", "closed", closed(c));
        }
        try (NbdTestClient c = handshake()) {
            rawOption(c, NBDMAGIC, NBD_OPT_GO, 9, TestData.GO_VOL);
            outcome("NBDMAGIC as option magic", "closed", closed(c));
        }
        for (long length : new long[] {(16L << 20) + 1, 0xffffffffL}) {
            try (NbdTestClient c = handshake()) {
                rawOption(c, IHAVEOPT, 12345, length, new byte[4096]);
                outcome("option declaring " + length + " bytes of data", "closed", closed(c));
            }
        }
        record ExportName(String what, byte[] name) {}
        byte[] tooLong = new byte[MAX_STRING_BYTES + 1];
        Arrays.fill(tooLong, (byte) 'v');
        for (ExportName e : List.of(
                new ExportName("an unknown export", "nosuch".getBytes(StandardCharsets.UTF_8)),
                new ExportName("the empty name (no default among 3)", new byte[0]),
                new ExportName("a name that is not UTF-8", new byte[] {'v', (byte) 0xff, 'l'}),
                new ExportName("a 4097-byte name", tooLong),
                new ExportName("100 KiB of data", new byte[100 * 1024]))) {
            try (NbdTestClient c = handshake()) {
                sendIgnoringErrors(
                        c,
                        ByteBuffer.allocate(16 + e.name().length)
                                .putLong(IHAVEOPT)
                                .putInt(NBD_OPT_EXPORT_NAME)
                                .putInt(e.name().length)
                                .put(e.name())
                                .flip());
                outcome("EXPORT_NAME of " + e.what(), "closed", closed(c));
            }
        }
        // More than 1024 options: the 1025th, whatever it is, ends the connection.
        for (int before : new int[] {1023, 1024}) {
            try (NbdTestClient c = handshake()) {
                ByteBuffer all = ByteBuffer.allocate(before * 16 + 16 + TestData.GO_VOL.length);
                for (int i = 0; i < before; i++) {
                    all.putLong(IHAVEOPT).putInt(1000 + i).putInt(0);
                }
                all.putLong(IHAVEOPT)
                        .putInt(NBD_OPT_GO)
                        .putInt(TestData.GO_VOL.length)
                        .put(TestData.GO_VOL)
                        .flip();
                c.write(all);
                int unsup = 0;
                for (int i = 0; i < before; i++) {
                    NbdTestClient.OptionReply r = c.optionReply();
                    assertEquals(1000 + i, r.option());
                    unsup += r.type() == NBD_REP_ERR_UNSUP ? 1 : 0;
                }
                String last;
                if (before == 1023) {
                    NbdTestClient.OptionReply r;
                    while ((r = c.optionReply()).type() == NBD_REP_INFO) {
                        // the export's information
                    }
                    last = rep(r.type());
                    assertEquals(NbdFixture.original(4096), c.read(4096, 512)[0], "the 1024th option, GO, works");
                } else {
                    last = closed(c);
                }
                outcome(
                        before + " unknown options then GO",
                        before + " x NBD_REP_ERR_UNSUP, then " + (before == 1023 ? "NBD_REP_ACK" : "closed"),
                        unsup + " x NBD_REP_ERR_UNSUP, then " + last);
            }
        }
        try (NbdTestClient c = handshake()) {
            rawOption(c, IHAVEOPT, NBD_OPT_GO, 100, new byte[10]);
            c.close();
            outcome(
                    "a client that leaves in the middle of an option",
                    "server lets go",
                    eventually(WAIT_MS, () -> fx.server.connectionCount() == 1) ? "server lets go" : "still counted");
        }
    }

    /** Sends on a virtual thread: the server may close the connection before it has read everything. */
    private static void sendIgnoringErrors(NbdTestClient c, ByteBuffer data) {
        Thread.ofVirtual().start(() -> {
            try {
                c.write(data);
            } catch (IOException e) {
                // closed by the server: what the case expects
            }
        });
    }

    /**
     * A stall in the handshake is closed after the timeout; good clients meanwhile are served. An
     * idle connection (between requests) all the while is not timed out: only a message that has
     * begun has a deadline.
     */
    @Test
    void aClientThatStallsInTheHandshakeIsClosedAfterTheTimeout(TestInfo info) throws Exception {
        start(info);
        NbdTestClient idle = fx.open("vol", true);
        long idleSince = clock.getAsLong();
        record Stall(String what, boolean flags, byte[] sent) {}
        List<Stall> stalls = List.of(
                new Stall("nothing after the greeting", false, new byte[0]),
                new Stall("half the client flags", false, new byte[] {0, 0}),
                new Stall(
                        "half an option header",
                        true,
                        ByteBuffer.allocate(8).putLong(IHAVEOPT).array()),
                new Stall(
                        "GO with 10 of its 20 bytes",
                        true,
                        ByteBuffer.allocate(26)
                                .putLong(IHAVEOPT)
                                .putInt(NBD_OPT_GO)
                                .putInt(20)
                                .put(new byte[10])
                                .array()));
        for (Stall s : stalls) {
            List<String> before = fx.server.openPeers();
            try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
                c.greeting(); // the handshake's deadline runs from before the greeting
                String peer = newPeer(fx.server, before);
                if (s.flags()) {
                    c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE);
                }
                c.write(ByteBuffer.wrap(s.sent()));
                stalledWhileOthersWork("handshake stall: " + s.what(), c, peer);
            }
        }
        try (idle) {
            long idleMs = (clock.getAsLong() - idleSince) / 1_000_000;
            assertTrue(idleMs > 2 * timeout.toMillis(), "idle for " + idleMs + " ms");
            // Every watchdog pass since the clock moved found it idle: it closed the stalled ones only.
            assertEquals(stalls.size(), fx.server.timedOut(), "connections the watchdog closed");
            byte[] data = idle.read(0, 4096);
            outcome(
                    "a connection idle for " + idleMs / timeout.toMillis() + "x the timeout",
                    "still served",
                    data[0] == NbdFixture.original(0) && data[4095] == NbdFixture.original(4095)
                            ? "still served"
                            : "wrong data");
        }
    }

    /**
     * Checks that a good client is served while {@code c} stalls (the clock stands still: nothing
     * is timed out meanwhile, and {@code c} still has its deadline running afterwards), then that
     * the watchdog closes {@code c} once the clock is past the timeout, not before.
     */
    private void stalledWhileOthersWork(String name, NbdTestClient c, String peer) {
        good.check(name + " (during the stall)");
        closedAfterTheTimeout(fx.server, clock, timeout, peer, name);
        Closed closed = awaitClosed(c, WAIT_MS);
        outcome(
                name,
                "closed after the " + timeout.toMillis() + " ms timeout, others served meanwhile",
                (closed.bytesBefore() == 0 ? "closed" : "closed after " + closed.bytesBefore() + " bytes")
                        + " after the " + timeout.toMillis() + " ms timeout, others served meanwhile");
    }

    // ---- transmission --------------------------------------------------------------------------

    /** One request on a connection; its cookie comes back with the error. */
    private static NbdTestClient.Reply ask(
            NbdTestClient c, int flags, int type, long offset, long length, byte[] payload, long cookie)
            throws IOException {
        c.request(flags, type, cookie, offset, length, payload);
        NbdTestClient.Reply r = c.reply();
        assertEquals(cookie, r.cookie(), "the reply answers the request");
        return r;
    }

    @Test
    void invalidRequestsGetTheSpecErrorAndTheConnectionStaysInSync(TestInfo info) throws Exception {
        start(info);
        record Bad(String name, int flags, int type, long offset, long length, int payload, int expected) {}
        long top = 0xfffffffffffff000L;
        int huge = MAX_PAYLOAD_BYTES + 512;
        List<Bad> cases = new ArrayList<>(List.of(
                new Bad("READ across the end", 0, NBD_CMD_READ, LIN_SIZE - 4096, 8192, 0, NBD_EINVAL),
                new Bad("READ at the end", 0, NBD_CMD_READ, LIN_SIZE, 512, 0, NBD_EINVAL),
                new Bad("READ past the end", 0, NBD_CMD_READ, LIN_SIZE + 4096, 4096, 0, NBD_EINVAL),
                new Bad("WRITE across the end", 0, NBD_CMD_WRITE, LIN_SIZE - 4096, 8192, 8192, NBD_ENOSPC),
                new Bad("WRITE past the end", 0, NBD_CMD_WRITE, LIN_SIZE, 4096, 4096, NBD_ENOSPC),
                new Bad("TRIM across the end", 0, NBD_CMD_TRIM, LIN_SIZE - 4096, 8192, 0, NBD_EINVAL),
                new Bad("WRITE_ZEROES across the end", 0, NBD_CMD_WRITE_ZEROES, LIN_SIZE - 4096, 8192, 0, NBD_ENOSPC),
                new Bad("READ with offset+length over 2^64", 0, NBD_CMD_READ, top, 8192, 0, NBD_EINVAL),
                new Bad("WRITE with offset+length over 2^64", 0, NBD_CMD_WRITE, top, 8192, 8192, NBD_ENOSPC),
                new Bad("TRIM with offset+length over 2^64", 0, NBD_CMD_TRIM, top, 8192, 0, NBD_EINVAL),
                new Bad("WRITE_ZEROES with offset+length over 2^64", 0, NBD_CMD_WRITE_ZEROES, top, 8192, 0, NBD_ENOSPC),
                new Bad("READ at offset 2^63", 0, NBD_CMD_READ, Long.MIN_VALUE, 512, 0, NBD_EINVAL),
                new Bad("READ of 32 MiB + 512", 0, NBD_CMD_READ, 0, huge, 0, NBD_EINVAL),
                new Bad("READ of 2^32-1 bytes", 0, NBD_CMD_READ, 0, 0xffffffffL, 0, NBD_EINVAL),
                new Bad("WRITE of 32 MiB + 512 (payload sent)", 0, NBD_CMD_WRITE, 0, huge, huge, NBD_EINVAL),
                new Bad("READ of 0 bytes", 0, NBD_CMD_READ, 0, 0, 0, NBD_EINVAL),
                new Bad("WRITE of 0 bytes", 0, NBD_CMD_WRITE, 0, 0, 0, NBD_EINVAL),
                new Bad("READ at an unaligned offset", 0, NBD_CMD_READ, 100, 512, 0, NBD_EINVAL),
                new Bad("READ of an unaligned length", 0, NBD_CMD_READ, 0, 100, 0, NBD_EINVAL),
                new Bad("WRITE at an unaligned offset", 0, NBD_CMD_WRITE, 256, 512, 512, NBD_EINVAL),
                new Bad("WRITE of an unaligned length", 0, NBD_CMD_WRITE, 0, 700, 700, NBD_EINVAL),
                new Bad("TRIM unaligned", 0, NBD_CMD_TRIM, 512, 100, 0, NBD_EINVAL),
                new Bad("WRITE_ZEROES unaligned", 0, NBD_CMD_WRITE_ZEROES, 100, 512, 0, NBD_EINVAL),
                new Bad("command 5 (CACHE, not offered)", 0, 5, 0, 4096, 0, NBD_EINVAL),
                new Bad("BLOCK_STATUS without a metadata context", 0, 7, 0, 4096, 0, NBD_EINVAL),
                new Bad("command 100", 0, 100, 0, 4096, 0, NBD_EINVAL),
                new Bad("command 65535", 0, 0xffff, 0, 4096, 0, NBD_EINVAL),
                new Bad("READ with REQ_ONE (a BLOCK_STATUS flag)", 1 << 3, NBD_CMD_READ, 0, 4096, 0, NBD_EINVAL),
                new Bad("WRITE with unknown flag 1<<15", 1 << 15, NBD_CMD_WRITE, 0, 4096, 4096, NBD_EINVAL),
                new Bad(
                        "WRITE_ZEROES with FAST_ZERO (not offered)",
                        1 << 4,
                        NBD_CMD_WRITE_ZEROES,
                        0,
                        4096,
                        0,
                        NBD_EINVAL),
                new Bad("READ with NO_HOLE", NBD_CMD_FLAG_NO_HOLE, NBD_CMD_READ, 0, 4096, 0, NBD_EINVAL),
                new Bad("WRITE with NO_HOLE", NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 0, 4096, 4096, NBD_EINVAL),
                new Bad("WRITE with DF", NBD_CMD_FLAG_DF, NBD_CMD_WRITE, 0, 4096, 4096, NBD_EINVAL),
                new Bad("FLUSH with DF", NBD_CMD_FLAG_DF, NBD_CMD_FLUSH, 0, 0, 0, NBD_EINVAL),
                // What is allowed, at the edges:
                new Bad("READ with FUA (allowed on every command)", NBD_CMD_FLAG_FUA, NBD_CMD_READ, 0, 4096, 0, 0),
                new Bad("READ of the last block", 0, NBD_CMD_READ, LIN_SIZE - 512, 512, 0, 0),
                new Bad("TRIM of 0 bytes at the end", 0, NBD_CMD_TRIM, LIN_SIZE, 0, 0, 0),
                new Bad("WRITE_ZEROES of 0 bytes at the end", 0, NBD_CMD_WRITE_ZEROES, LIN_SIZE, 0, 0, 0),
                new Bad(
                        "WRITE_ZEROES with NO_HOLE and FUA",
                        NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA,
                        NBD_CMD_WRITE_ZEROES,
                        0,
                        4096,
                        0,
                        0)));
        byte[] tail = new byte[8192];
        for (boolean structured : new boolean[] {false, true}) {
            List<Bad> all = new ArrayList<>(cases);
            all.add(new Bad("READ with DF", NBD_CMD_FLAG_DF, NBD_CMD_READ, 0, 4096, 0, structured ? 0 : NBD_EINVAL));
            try (NbdTestClient c = fx.open("lin", structured)) {
                // The refused writes would have put 0x77 here; the last 8 KiB of lin are zeroes.
                assertArrayEquals(tail, c.read(LIN_SIZE - tail.length, tail.length));
                long cookie = 100;
                for (Bad b : all) {
                    byte[] payload = b.payload() == 0 ? null : filled(b.payload(), 0x77);
                    NbdTestClient.Reply r = ask(c, b.flags(), b.type(), b.offset(), b.length(), payload, ++cookie);
                    if (structured && b.type() == NBD_CMD_READ && r.error() != 0) {
                        assertNotNull(r.message(), "with structured replies a READ error is a structured error chunk");
                    }
                    // The connection is in sync: the next request's reply is correct.
                    byte[] now = c.read(LIN_SIZE - tail.length, tail.length);
                    String sync = Arrays.equals(tail, now) ? "" : " but the end of lin changed";
                    outcome(
                            b.name() + (structured ? " (structured)" : ""),
                            errno(b.expected()),
                            errno(r.error()) + sync);
                }
            }
        }
    }

    @Test
    void brokenFramingAndStalledRequestsCloseTheConnection(TestInfo info) throws Exception {
        start(info);
        try (NbdTestClient c = fx.open("vol", false)) {
            c.write(ByteBuffer.allocate(28)
                    .putInt(NBD_REQUEST_MAGIC ^ 0x100)
                    .putShort((short) 0)
                    .putShort((short) NBD_CMD_READ)
                    .putLong(1)
                    .putLong(0)
                    .putInt(4096)
                    .flip());
            outcome("bad request magic", "closed", closed(c));
        }
        try (NbdTestClient c = fx.open("vol", true)) {
            c.write(ByteBuffer.allocate(28)
                    .putInt(NBD_SIMPLE_REPLY_MAGIC)
                    .putShort((short) 0)
                    .putShort((short) NBD_CMD_READ)
                    .putLong(1)
                    .putLong(0)
                    .putInt(4096)
                    .flip());
            outcome("a reply's magic as request magic (structured)", "closed", closed(c));
        }
        List<String> peers = fx.server.openPeers();
        try (NbdTestClient c = fx.open("vol", false)) {
            String peer = newPeer(fx.server, peers);
            // (The good client's last read buffer may take a moment to be given back after its reply.)
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() == 0),
                    "the good client's buffers are given back: " + fx.server.bufferBytesInUse());
            c.write(ByteBuffer.allocate(12)
                    .putInt(NBD_REQUEST_MAGIC)
                    .putShort((short) 0)
                    .putShort((short) NBD_CMD_READ)
                    .putInt(0)
                    .flip());
            assertEquals(0, fx.server.bufferBytesInUse(), "no buffer for half a header");
            stalledWhileOthersWork("half a request header, then a stall", c, peer);
        }
        // A write's header and half its payload, then a stall: its buffer is held, then given back.
        byte[] before = readVol(1 << 20, 65536);
        peers = fx.server.openPeers();
        try (NbdTestClient c = fx.open("vol", false)) {
            String peer = newPeer(fx.server, peers);
            c.request(0, NBD_CMD_WRITE, 5, 1 << 20, 65536, null);
            c.write(ByteBuffer.wrap(filled(32768, 0x33)));
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() == 65536),
                    "the write's 64 KiB buffer is in use: " + fx.server.bufferBytesInUse());
            stalledWhileOthersWork("a WRITE with half its payload, then a stall", c, peer);
            assertTrue(eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() == 0), "the buffer is given back");
        }
        assertArrayEquals(before, readVol(1 << 20, 65536), "the half-sent write did not reach the device");
        // The same, but the client leaves.
        try (NbdTestClient c = fx.open("vol", true)) {
            c.request(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 6, 2 << 20, 1 << 20, null);
            c.write(ByteBuffer.wrap(filled(300_000, 0x44)));
            c.close();
        }
        awaitConnections(fx.server, 1, "the server let go of the connection");
        byte[] after = readVol(2 << 20, 1 << 20);
        boolean unchanged = true;
        for (int i = 0; i < after.length; i++) {
            unchanged &= after[i] == NbdFixture.original((2 << 20) + i);
        }
        outcome(
                "a WRITE of 1 MiB, 300000 bytes of payload, then the client leaves",
                "device unchanged",
                unchanged ? "device unchanged" : "device changed");
    }

    private byte[] readVol(long offset, int length) throws Exception {
        try (NbdTestClient c = fx.open("vol", false)) {
            return c.read(offset, length);
        }
    }

    /**
     * A client that sends reads and never takes the replies holds its part of the buffers (its
     * fair share of the shared budget, at least one largest request, and its reserve: see
     * BufferPool); others are served meanwhile; it is closed once a reply has waited past the timeout.
     */
    @Test
    void aClientThatDoesNotReadItsRepliesIsClosedAndOthersGoOn(TestInfo info) throws Exception {
        start(info);
        int reads = 16;
        int length = 8 << 20;
        List<String> peers = fx.server.openPeers();
        try (NbdTestClient c = fx.open("snap", false)) {
            String peer = newPeer(fx.server, peers);
            for (int i = 0; i < reads; i++) {
                c.sendRead(i, 0, length);
            }
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() >= MAX_PAYLOAD_BYTES),
                    "the stalled connection holds its share: " + fx.server.bufferBytesInUse());
            long held = fx.server.bufferBytesInUse();
            // Good clients are served while it stalls: the clock stands still, so they are not let
            // through by the watchdog closing it (it still holds its share afterwards).
            int checks = 8;
            long slowest = 0;
            for (int i = 0; i < checks; i++) {
                slowest = Math.max(slowest, good.check("while a client does not read its replies"));
            }
            assertEquals(0, fx.server.timedOut(), "the watchdog closed a connection while the clock stood still");
            assertTrue(
                    fx.server.bufferBytesInUse() >= MAX_PAYLOAD_BYTES,
                    "the stalled connection still holds its share: " + fx.server.bufferBytesInUse());
            closedAfterTheTimeout(fx.server, clock, timeout, peer, "replies never read");
            awaitConnections(fx.server, 1, "the stalled connection is closed");
            System.out.printf(
                    "non-reading client: held %s of buffers (budget %s); %d good checks meanwhile, slowest %d ms%n",
                    mib(held), mib(budget), checks, slowest);
            Closed closed = awaitClosed(c, WAIT_MS);
            assertTrue(closed.bytesBefore() < (long) reads * length, "not every reply was sent");
            outcome(
                    "reads sent, replies never read",
                    "closed after the reply timeout, others served meanwhile",
                    "closed after the reply timeout, others served meanwhile");
        }
    }

    /**
     * When one client's stalled replies hold the whole shared buffer budget, others are served
     * from their reserves (see BufferPool) while it is still connected: they do not wait for the
     * watchdog to close it.
     */
    @Test
    void aClientHoldingTheSharedBudgetDelaysNoOne(TestInfo info) throws Exception {
        budget = 64L << 20; // 32 MiB shared: one stalled client's fair share takes all of it
        start(info);
        // The good client's held connection alone: the start check's others have gone.
        assertTrue(
                eventually(WAIT_MS, () -> fx.server.connectionCount() == 1),
                "connections: " + fx.server.connectionCount());
        List<String> peers = fx.server.openPeers();
        try (NbdTestClient c = fx.open("snap", false)) {
            String peer = newPeer(fx.server, peers);
            try (NbdTestClient other = fx.open("vol", true)) {
                for (int i = 0; i < 9; i++) {
                    c.sendRead(i, 0, 8 << 20);
                }
                assertTrue(
                        eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() >= budget / 2),
                        "the shared budget is spent");
                byte[] data = other.read(4096, 4096);
                byte[] large = other.read(0, 1 << 20); // larger than its reserve: in pieces of it
                boolean right = data[0] == NbdFixture.original(4096)
                        && large[(1 << 20) - 1] == NbdFixture.original((1 << 20) - 1);
                int connections = fx.server.connectionCount(); // the good client's, the stalled one's, other's
                long timedOut = fx.server.timedOut(); // none: the clock stands still
                outcome(
                        "reads while a stalled client holds the shared budget",
                        "served while it is connected",
                        !right
                                ? "wrong data"
                                : connections == 3 && timedOut == 0
                                        ? "served while it is connected"
                                        : "served with " + connections + " connections, " + timedOut + " timed out");
                // Then the watchdog closes it (awaitClosed reads the replies: only once it is closed).
                closedAfterTheTimeout(fx.server, clock, timeout, peer, "the stalled client");
                awaitConnections(fx.server, 2, "the stalled connection is closed");
                awaitClosed(c, WAIT_MS);
            }
        }
    }

    /** 200 connections at once, each writing and reading back its own block and reading the snapshot. */
    @Test
    void twoHundredConnectionsAtOnce(TestInfo info) throws Exception {
        start(info);
        int n = 200;
        CyclicBarrier allOpen = new CyclicBarrier(n);
        AtomicInteger peak = new AtomicInteger();
        AtomicInteger ok = new AtomicInteger();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int id = i;
                done.add(pool.submit(() -> {
                    try (NbdTestClient c = fx.open(id % 2 == 0 ? "vol" : "snap", id % 3 == 0)) {
                        allOpen.await(WAIT_MS, TimeUnit.MILLISECONDS);
                        peak.accumulateAndGet(fx.server.connectionCount(), Math::max);
                        long at = id * 16384L;
                        if (id % 2 == 0) {
                            byte[] mine = pattern(1000 + id);
                            assertEquals(0, c.write(at, mine));
                            assertArrayEquals(mine, c.read(at, mine.length));
                        } else {
                            byte[] old = c.read(at, 16384);
                            for (int k = 0; k < old.length; k += 512) {
                                assertEquals(NbdFixture.original(at + k), old[k]);
                            }
                        }
                        c.disconnect();
                        ok.incrementAndGet();
                    } catch (Exception | AssertionError e) {
                        allOpen.reset(); // the others stop waiting for this one
                        throw e;
                    }
                    return null;
                }));
            }
            joinAll(done, 120);
        }
        // The origin writes went to vol only; the snapshot still has the original everywhere.
        try (NbdTestClient snap = fx.open("snap", false);
                NbdTestClient vol = fx.open("vol", true)) {
            for (int id = 0; id < n; id += 2) {
                assertEquals(NbdFixture.original(id * 16384L), snap.read(id * 16384L, 512)[0]);
                assertArrayEquals(Arrays.copyOf(pattern(1000 + id), 512), vol.read(id * 16384L, 512));
            }
        }
        System.out.printf(
                "200 connections: %d open at once (with the good client's), %d succeeded%n", peak.get(), ok.get());
        assertTrue(peak.get() >= n, "all were open at once: " + peak.get());
        outcome("200 connections at once, each a verified write or read", "200 succeed", ok.get() + " succeed");
    }

    /** Past maxConnections new connections are closed before the greeting; the others go on. */
    @Test
    void connectionsOverTheLimitAreClosed(TestInfo info) throws Exception {
        start(info, settings(8, 4));
        assertTrue(eventually(WAIT_MS, () -> fx.server.connectionCount() == 1));
        List<NbdTestClient> open = new ArrayList<>();
        try {
            for (int i = 0; i < 7; i++) { // the good client holds one
                open.add(fx.open("vol", false));
            }
            int refused = 0;
            for (int i = 0; i < 5; i++) {
                try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
                    refused += awaitClosed(c, WAIT_MS).bytesBefore() == 0 ? 1 : 0;
                }
            }
            for (NbdTestClient c : open) {
                assertEquals(NbdFixture.original(8192), c.read(8192, 512)[0]);
            }
            NbdTestClient leaving = open.removeFirst();
            leaving.disconnect();
            awaitClosed(leaving, WAIT_MS);
            leaving.close();
            assertTrue(eventually(WAIT_MS, () -> fx.server.connectionCount() == 7));
            String afterwards;
            try (NbdTestClient c = fx.open("snap", true)) {
                afterwards = c.read(0, 512)[0] == NbdFixture.original(0) ? "a new one is served" : "wrong data";
            }
            assertTrue(eventually(WAIT_MS, () -> fx.server.connectionCount() == 7));
            System.out.printf(
                    "| %s | 5 connections over maxConnections 8 | closed before the greeting |"
                            + " %d closed before the greeting; %s |%n",
                    test, refused, afterwards);
            assertEquals(5, refused);
            assertEquals("a new one is served", afterwards);
        } finally {
            for (NbdTestClient c : open) {
                c.close();
            }
        }
        assertTrue(eventually(WAIT_MS, () -> fx.server.connectionCount() == 1));
        good.check("after the connection limit");
    }

    /**
     * Many clients each sending a 32 MiB write at once: the buffers of all requests in flight stay
     * within the budget. The device is suspended first, so that every write parks holding its
     * buffers: the shared budget is then spent and the other writes are streamed through their
     * connections' reserves; none has a deadline running while parked, so none is dropped however
     * long past the timeout it waits. After the resume every write succeeds. Memory is measured.
     */
    @Test
    void manyClientsWriting32MiBStayWithinTheBudget(TestInfo info) throws Exception {
        budget = 64L << 20;
        start(info);
        fx.dm.create("big", null, TableParser.parse("0 " + (2L << 21) + " zero"));
        int clients = Integer.getInteger("dmsnap.tests.nbdBigWriters", 200);
        ByteBuffer payload = ByteBuffer.allocateDirect(MAX_PAYLOAD_BYTES);
        while (payload.hasRemaining()) {
            payload.put((byte) 0x5a);
        }
        payload.flip();
        Memory before = Memory.now();
        AtomicInteger ok = new AtomicInteger();
        long millis;
        long parked;
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            CyclicBarrier together = new CyclicBarrier(clients + 1);
            for (int i = 0; i < clients; i++) {
                int id = i;
                done.add(pool.submit(() -> {
                    try (NbdTestClient c = fx.open("big", id % 2 == 0)) {
                        together.await(WAIT_MS, TimeUnit.MILLISECONDS);
                        c.request(0, NBD_CMD_WRITE, id, (long) (id % 32) * MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES, null);
                        c.write(payload.duplicate());
                        NbdTestClient.Reply r = c.reply();
                        assertEquals(id, r.cookie());
                        assertEquals(0, r.error(), "a 32 MiB write");
                        ok.incrementAndGet();
                    } catch (Exception | AssertionError e) {
                        together.reset();
                        throw e;
                    }
                    return null;
                }));
            }
            fx.dm.get("big").suspend();
            long startNanos;
            try {
                together.await(WAIT_MS, TimeUnit.MILLISECONDS);
                startNanos = System.nanoTime();
                // Every write is parked: those that found room in the shared budget hold all of it, the
                // others are streamed through their reserves (see BufferPool).
                var big = fx.dm.get("big");
                assertTrue(
                        eventually(WAIT_MS, () -> big.parkedIo() == clients),
                        "parked writes: " + big.parkedIo() + " of " + clients);
                assertTrue(
                        fx.server.bufferBytesInUse() >= budget / 2,
                        "the parked writes hold the shared budget: " + fx.server.bufferBytesInUse());
                // Waiting for the device (or for a reserve) is the server's wait, not the client's: no
                // deadline runs, and a watchdog pass with the clock far past the timeout drops no one.
                assertTrue(
                        eventually(WAIT_MS, () -> fx.server.deadlinesRunning() == 0),
                        "connections with a deadline running: " + fx.server.deadlinesRunning());
                clock.advance(timeout.multipliedBy(10));
                fx.server.closeOverdue();
                parked = fx.server.bufferBytesInUse();
                assertEquals(0, fx.server.timedOut(), "no writer was dropped while it waited");
                assertTrue(
                        eventually(WAIT_MS, () -> fx.server.connectionCount() == clients + 1),
                        "every writer is still connected: " + fx.server.connectionCount());
            } finally {
                fx.dm.get("big").resume();
            }
            joinAll(done, 120);
            millis = (System.nanoTime() - startNanos) / 1_000_000;
        }
        Memory after = Memory.now();
        long high = fx.server.bufferBytesHighWater();
        System.out.printf(
                "32 MiB writes: %d clients, %d ok in %d ms (%.0f MiB/s); %s in use while parked;"
                        + " buffer high water %s of %s budget; before: %s; after: %s%n",
                clients,
                ok.get(),
                millis,
                clients * 32.0 * 1000 / millis,
                mib(parked),
                mib(high),
                mib(budget),
                before,
                after);
        assertTrue(high <= budget, "high water " + high + " over the budget " + budget);
        outcome(
                clients + " clients each writing 32 MiB at once",
                clients + " ok, high water <= " + mib(budget),
                ok.get() + " ok, high water " + (high <= budget ? "<= " + mib(budget) : mib(high)));
    }

    /** Option data for GO vol with no information requests. */
    private static final class TestData {
        static final byte[] GO_VOL = NbdTestClient.goData("vol");
    }
}
