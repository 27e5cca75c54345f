package dmsnap.nbd;

import static dmsnap.nbd.NbdProbe.*;
import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import dmsnap.store.testing.Figures;
import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Throws random and mutated handshakes and request streams at the server: pure random bytes,
 * valid option sequences with bit flips, truncations, insertions and corrupted lengths, and
 * valid handshakes followed by mutated requests (random commands, flags, offsets, lengths,
 * payloads that do not match). Seeded ({@code -Ddmsnap.tests.seed}), bounded in count
 * ({@code dmsnap.tests.nbdFuzzCases}, 2000) and time ({@code dmsnap.tests.nbdFuzzMillis}, 20 s),
 * both scaled by {@code dmsnap.tests.fuzzScale} ({@link FuzzBudget}).
 *
 * <p>After every case: the server closed the fuzz connection once the client's input ended;
 * everything it sent was well-formed (the greeting, option replies of known types, reply magics,
 * only the spec's errors EINVAL/ENOSPC, structured chunks that add up); no device is left open,
 * no buffer in use, no exception escaped on the server; and a good client, on a device the fuzzer
 * never names, still reads back exactly what it wrote on a held connection and on a new one. The
 * server's clock does not move ({@link ManualClock}): every connection ends with its client's
 * input, none because the watchdog found the machine slow.
 */
@ExtendWith(Seeds.class)
class NbdFuzzTest {
    static final FuzzBudget BUDGET = FuzzBudget.of("nbdFuzz", 2000, 20_000);
    static final int GUARD_BYTES = 1 << 20;
    static final long VOL_SIZE = NbdFixture.SECTORS * 512L;
    static final long LIN_SIZE = 2048 * 512L;
    /**
     * Generated writes start in the first MiB, so most of them land on chunks written before. (A
     * mutated length can reach far: a 6 MiB WRITE_ZEROES once overflowed a smaller COW, so
     * {@link NbdFixture}'s COW holds every chunk of {@code snap}.)
     */
    static final int WRITE_AREA = 1 << 20;

    @TempDir
    Path dir;

    NbdFixture fx;
    NbdTestClient held;
    byte[] guard = new byte[GUARD_BYTES];
    int goodRound;
    /** Which exports take TRIM (the model of the replies needs it). */
    static final java.util.Map<String, Boolean> TRIM = new java.util.HashMap<>();

    @BeforeEach
    @Timeout(120)
    void start() throws Exception {
        fx = new NbdFixture(
                dir, new NbdServer.Settings(Duration.ofSeconds(2), 1024, 8, 64L << 20, new ManualClock()), null);
        Path file = dir.resolve("guard.img");
        new Random(7).nextBytes(guard);
        Files.write(file, guard);
        fx.dm.create("guard", null, TableParser.parse("0 " + GUARD_BYTES / 512 + " linear " + file + " 0"));
        held = fx.open("guard", true);
        for (String name : EXPORTS) {
            try (NbdTestClient c = fx.open(name, false)) {
                TRIM.put(name, (c.transmissionFlags & NBD_FLAG_SEND_TRIM) != 0);
            }
        }
    }

    @AfterEach
    @Timeout(120)
    void stop() throws Exception {
        try {
            if (held != null) {
                held.close();
            }
        } finally {
            fx.close();
        }
    }

    @Test
    void randomAndMutatedClientsNeverHurtTheServer() {
        // The hang guard grows with the budget (dmsnap.tests.fuzzScale), which a fixed @Timeout cannot.
        assertTimeoutPreemptively(BUDGET.hangGuard(), this::fuzz);
    }

    private void fuzz() throws Exception {
        Random master = Seeds.random("nbd-fuzz");
        FuzzBudget.Clock clock = BUDGET.start();
        int[] kinds = new int[4];
        long sent = 0;
        long received = 0;
        int reachedTransmission = 0;
        int modelled = 0;
        int cases = 0;
        for (; clock.more(cases); cases++) {
            long caseSeed = master.nextLong();
            Random r = new Random(caseSeed);
            int kind = r.nextInt(4);
            kinds[kind]++;
            Input in = switch (kind) {
                case 0 -> new Input(randomBytes(r), null);
                case 1 -> new Input(mutatedHandshake(r), null);
                case 2 -> handshakeThenRequests(r, true);
                default -> handshakeThenRequests(r, false);
            };
            byte[] input = in.bytes();
            String what = "case " + cases + " (kind " + kind + ", seed " + caseSeed + ", " + input.length + " bytes: "
                    + HexFormat.of().formatHex(input, 0, Math.min(input.length, 400))
                    + (input.length > 400 ? "..." : "")
                    + ")";
            Outcome out = throwAt(input, what);
            sent += input.length;
            received += out.total();
            Validated v = validate(out.bytes(), out.total(), in.expected());
            reachedTransmission += v.transmission() ? 1 : 0;
            modelled += v.modelled();
            assertNull(
                    v.problem(),
                    () -> what + ": the server sent something malformed or unexpected"
                            + (in.expected() == null ? "" : "; expected replies " + in.expected()));
            if (in.expected() != null) {
                assertTrue(v.transmission(), what + ": a valid handshake did not reach transmission");
            }
            assertEquals(0, fx.server.unexpectedErrors(), what + ": an exception escaped on the server");
            for (String name : new String[] {"vol", "snap", "lin"}) {
                var device = fx.dm.find(name);
                assertTrue(
                        eventually(WAIT_MS, () -> device.info().openCount() == 0), what + ": " + name + " left open");
            }
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.bufferBytesInUse() == 0),
                    what + ": buffers left in use: " + fx.server.bufferBytesInUse());
            goodClient(what);
            assertTrue(
                    eventually(WAIT_MS, () -> fx.server.connectionCount() == 1),
                    what + ": connections left: " + fx.server.connectionCount());
        }
        long millis = clock.elapsedMillis();
        try (NbdTestClient c = fx.open("guard", false)) {
            assertArrayEquals(guard, c.read(0, GUARD_BYTES), "the guard device at the end");
        }
        System.out.printf(
                "NBD fuzz: seed %d: %d cases in %d ms (random bytes %d, mutated handshakes %d, requests %d,"
                        + " random after GO %d; %d reached transmission; %d replies checked against the model); %d bytes sent,"
                        + " %d received; buffer high water %s; %s; reproduce with -Ddmsnap.tests.seed=%d%n",
                Seeds.seed(),
                cases,
                millis,
                kinds[0],
                kinds[1],
                kinds[2],
                kinds[3],
                reachedTransmission,
                modelled,
                sent,
                received,
                mib(fx.server.bufferBytesHighWater()),
                Memory.now(),
                Seeds.seed());
        Figures.record(
                "fuzz.nbd.cases",
                cases + " hostile NBD streams (random bytes " + kinds[0] + ", mutated handshakes "
                        + kinds[1] + ", mutated requests " + kinds[2] + ", random after GO " + kinds[3] + "); "
                        + modelled
                        + " replies checked against the model; a good client unaffected; buffer high water "
                        + mib(fx.server.bufferBytesHighWater()));
        assertTrue(modelled > 0, "no reply was checked against the model");
        assertEquals(0, fx.server.timedOut(), "connections the watchdog closed");
        assertTrue(fx.server.bufferBytesHighWater() <= 64L << 20);
    }

    // ---- one case ------------------------------------------------------------------------------

    /** What the server sent (the first 16 MiB kept) before it closed the connection. */
    record Outcome(byte[] bytes, long total) {}

    /**
     * Connects, sends {@code input} and ends its output, reading all the while; the server must
     * close the connection once the input has ended (waited for up to a minute: a loaded machine is slow).
     */
    private Outcome throwAt(byte[] input, String what) throws Exception {
        NbdTestClient c = NbdTestClient.connect(fx.server.socketPath());
        try (c) {
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    c.write(ByteBuffer.wrap(input));
                    c.socket.shutdownOutput();
                } catch (IOException e) {
                    // the server closed first: allowed
                }
            });
            CompletableFuture<Outcome> drained = CompletableFuture.supplyAsync(
                    () -> {
                        ByteArrayOutputStream kept = new ByteArrayOutputStream();
                        ByteBuffer b = ByteBuffer.allocate(64 * 1024);
                        long total = 0;
                        try {
                            int n;
                            while ((n = c.socket.read(b.clear())) >= 0) {
                                if (kept.size() < 16 << 20) {
                                    kept.write(b.array(), 0, n);
                                }
                                total += n;
                            }
                        } catch (IOException e) {
                            // reset by the server: closed as well
                        }
                        return new Outcome(kept.toByteArray(), total);
                    },
                    command -> Thread.ofVirtual().start(command));
            Outcome out;
            try {
                out = drained.get(WAIT_MS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                return fail(what + ": the server did not close the connection after the client's input ended");
            }
            assertTrue(writer.join(Duration.ofMillis(WAIT_MS)), what + ": the client could not finish sending");
            return out;
        }
    }

    /** The good client: a write and read-back on the held connection, a read on a new one, on {@code guard}. */
    private void goodClient(String what) throws Exception {
        goodRound++;
        Random r = new Random(goodRound);
        byte[] block = new byte[4096];
        r.nextBytes(block);
        int at = r.nextInt(GUARD_BYTES / 4096) * 4096;
        assertEquals(0, held.write(at, block), what + ": the held connection's write");
        System.arraycopy(block, 0, guard, at, block.length);
        assertArrayEquals(block, held.read(at, block.length), what + ": the held connection's read");
        try (NbdTestClient c = fx.open("guard", goodRound % 2 == 0)) {
            int other = r.nextInt(GUARD_BYTES / 65536) * 65536;
            assertArrayEquals(
                    Arrays.copyOfRange(guard, other, other + 65536),
                    c.read(other, 65536),
                    what + ": a new connection's read");
            c.disconnect();
            assertEquals(0, awaitClosed(c, WAIT_MS).bytesBefore());
        }
    }

    // ---- generators ----------------------------------------------------------------------------

    private static byte[] randomBytes(Random r) {
        byte[] b = new byte[r.nextInt(10) == 0 ? r.nextInt(70_000) : r.nextInt(300)];
        r.nextBytes(b);
        return b;
    }

    private static final String[] NAMES = {"vol", "snap", "lin", "", "nosuch", "VOL", "vol\0", "sn"};

    private static byte[] name(Random r) {
        if (r.nextInt(8) == 0) {
            byte[] b = new byte[r.nextInt(20)];
            r.nextBytes(b);
            return b;
        }
        return NAMES[r.nextInt(NAMES.length)].getBytes(StandardCharsets.UTF_8);
    }

    private static void option(ByteArrayOutputStream out, int option, byte[] data) {
        out.writeBytes(ByteBuffer.allocate(16 + data.length)
                .putLong(IHAVEOPT)
                .putInt(option)
                .putInt(data.length)
                .put(data)
                .array());
    }

    private static final String[] QUERIES = {
        "base:allocation", "base:", "dmsnap:changed:snap", "dmsnap:", "qemu:", "qemu:dirty-bitmap:snap", "x", ""
    };

    /** LIST/SET_META_CONTEXT data: mostly well formed with names and queries from a list, else broken. */
    private static byte[] metaData(Random r) {
        if (r.nextInt(6) == 0) {
            byte[] b = new byte[r.nextInt(40)];
            r.nextBytes(b);
            return b;
        }
        byte[] name = name(r);
        int n = r.nextInt(10) == 0 ? r.nextInt() : r.nextInt(4);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(4).putInt(name.length).array());
        out.writeBytes(name);
        out.writeBytes(ByteBuffer.allocate(4).putInt(n).array());
        for (int i = 0; i < Math.min(n & 0xff, 4); i++) {
            byte[] q = r.nextInt(20) == 0
                    ? "base:".concat("a".repeat(4100)).getBytes(StandardCharsets.UTF_8)
                    : QUERIES[r.nextInt(QUERIES.length)].getBytes(StandardCharsets.UTF_8);
            int declared = r.nextInt(12) == 0 ? q.length + 1 + r.nextInt(100) : q.length;
            out.writeBytes(ByteBuffer.allocate(4).putInt(declared).array());
            out.writeBytes(q);
        }
        return out.toByteArray();
    }

    private static byte[] infoData(byte[] name, Random r) {
        int n = r.nextInt(4);
        ByteBuffer b = ByteBuffer.allocate(6 + name.length + 2 * n)
                .putInt(name.length)
                .put(name)
                .putShort((short) n);
        for (int i = 0; i < n; i++) {
            b.putShort((short) (r.nextInt(5) == 0 ? r.nextInt(65536) : r.nextInt(4)));
        }
        return b.array();
    }

    /** Client flags and a few options, ending (maybe) in GO, EXPORT_NAME or ABORT. */
    private static byte[] options(Random r, ByteArrayOutputStream out) {
        int count = 1 + r.nextInt(6);
        for (int i = 0; i < count; i++) {
            switch (r.nextInt(8)) {
                case 0 -> option(out, NBD_OPT_LIST, new byte[0]);
                case 6 ->
                    option(out, r.nextBoolean() ? NBD_OPT_LIST_META_CONTEXT : NBD_OPT_SET_META_CONTEXT, metaData(r));
                case 1 -> option(out, NBD_OPT_INFO, infoData(name(r), r));
                case 2 -> option(out, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                case 3 -> option(out, NBD_OPT_STARTTLS, new byte[0]);
                case 4 -> {
                    byte[] data = new byte[r.nextInt(40)];
                    r.nextBytes(data);
                    option(out, r.nextInt(2) == 0 ? r.nextInt(16) : r.nextInt(), data);
                }
                default -> option(out, NBD_OPT_GO, infoData(name(r), r));
            }
        }
        switch (r.nextInt(4)) {
            case 0 -> option(out, NBD_OPT_GO, infoData(name(r), r));
            case 1 -> option(out, NBD_OPT_EXPORT_NAME, name(r));
            case 2 -> option(out, NBD_OPT_ABORT, new byte[0]);
            default -> {} // the client just stops
        }
        return out.toByteArray();
    }

    private static byte[] mutatedHandshake(Random r) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(4)
                .putInt(r.nextInt(8) == 0 ? r.nextInt() : r.nextInt(4))
                .array());
        byte[] b = options(r, out);
        return mutate(b, 0, r, 1 + r.nextInt(4));
    }

    /** What a case sends, and for an unmutated request stream what each request must get. */
    record Input(byte[] bytes, Expectation expected) {}

    /** The replies a valid request stream must get: per cookie the error and, for reads, the length. */
    record Expectation(boolean structured, java.util.Map<Long, Expected> replies) {}

    /** The reply a request should get; {@code oneChunk}: a read with DF, whose data comes in one chunk. */
    record Expected(long cookie, int type, int error, long offset, long length, boolean oneChunk) {}

    static final String[] EXPORTS = {"vol", "snap", "lin"};

    /** A valid handshake into {@code vol}, {@code snap} or {@code lin}, then requests, mutated or random. */
    private static Input handshakeThenRequests(Random r, boolean generated) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        boolean noZeroes = r.nextInt(4) != 0;
        out.writeBytes(ByteBuffer.allocate(4)
                .putInt(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0))
                .array());
        boolean structured = r.nextBoolean();
        if (structured) {
            option(out, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
        }
        String export = EXPORTS[r.nextInt(EXPORTS.length)];
        long size = export.equals("lin") ? LIN_SIZE : VOL_SIZE;
        boolean blockStatus = structured && r.nextBoolean();
        if (blockStatus) {
            option(out, NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData(export, "base:allocation"));
        }
        if (r.nextInt(4) == 0) {
            option(out, NBD_OPT_EXPORT_NAME, export.getBytes(StandardCharsets.UTF_8));
        } else {
            option(out, NBD_OPT_GO, NbdTestClient.goData(export, NBD_INFO_BLOCK_SIZE));
        }
        int handshake = out.size();
        if (!generated) {
            out.writeBytes(randomBytes(r));
            return new Input(out.toByteArray(), null);
        }
        java.util.Map<Long, Expected> replies = new java.util.HashMap<>();
        boolean answered = true; // false after a DISC: the server reads no further
        int requests = 1 + r.nextInt(12);
        for (int i = 0; i < requests; i++) {
            Expected e = request(r, out, size, structured, TRIM.get(export), blockStatus);
            if (e == null) {
                break; // a write whose payload is cut short ends the stream: it gets no reply
            }
            answered &= e.type() != NBD_CMD_DISC;
            if (answered) {
                replies.put(e.cookie(), e);
            }
        }
        byte[] b = out.toByteArray();
        if (r.nextInt(3) == 0) { // a third stay valid, and their replies are checked one by one
            return new Input(b, new Expectation(structured, replies));
        }
        return new Input(mutate(b, r.nextInt(10) == 0 ? 0 : handshake, r, 1 + r.nextInt(3)), null);
    }

    private static final long[] LENGTHS = {
        0, 1, 100, 511, 512, 4096, 65536, 1 << 20, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 512, 0xffffffffL, 0x80000000L
    };

    /**
     * Appends one request (and a write's payload); returns what the spec says it must get, or null
     * when the stream ends inside it (a write whose payload is cut short).
     */
    private static Expected request(
            Random r, ByteArrayOutputStream out, long size, boolean structured, boolean trim, boolean blockStatus) {
        int pick = r.nextInt(100);
        int type;
        if (pick < 30) {
            type = NBD_CMD_READ;
        } else if (pick < 55) {
            type = NBD_CMD_WRITE;
        } else if (pick < 60) {
            type = NBD_CMD_FLUSH;
        } else if (pick < 70) {
            type = NBD_CMD_TRIM;
        } else if (pick < 80) {
            type = NBD_CMD_WRITE_ZEROES;
        } else if (pick < 83) {
            type = NBD_CMD_DISC;
        } else if (pick < 90) {
            type = NBD_CMD_BLOCK_STATUS;
        } else {
            int[] odd = {5, 7, 8, 9, 100, 0xffff};
            type = r.nextInt(3) == 0 ? r.nextInt(65536) : odd[r.nextInt(odd.length)];
        }
        int flags = switch (r.nextInt(10)) {
            case 0 -> NBD_CMD_FLAG_FUA;
            case 1 -> NBD_CMD_FLAG_NO_HOLE;
            case 2 -> NBD_CMD_FLAG_DF;
            case 3 -> r.nextInt(65536);
            case 4 -> NBD_CMD_FLAG_REQ_ONE;
            default -> 0;
        };
        long offset = switch (r.nextInt(12)) {
            case 0 -> size - 512;
            case 1 -> size;
            case 2 -> size + 4096;
            case 3 -> Long.MIN_VALUE;
            case 4 -> -4096;
            case 5 -> r.nextLong();
            case 6 -> r.nextInt(WRITE_AREA);
            default -> (long) r.nextInt(WRITE_AREA / 512) * 512;
        };
        long length = r.nextInt(3) == 0 ? LENGTHS[r.nextInt(LENGTHS.length)] : 512L * (1 + r.nextInt(32));
        if (type == NBD_CMD_WRITE && length > 64 * 1024 && r.nextInt(4) != 0) {
            length = 512L * (1 + r.nextInt(32)); // mostly writes whose payload is sent
        }
        if (type == NBD_CMD_DISC) {
            flags = 0;
        }
        long cookie = r.nextLong();
        out.writeBytes(ByteBuffer.allocate(28)
                .putInt(NBD_REQUEST_MAGIC)
                .putShort((short) flags)
                .putShort((short) type)
                .putLong(cookie)
                .putLong(offset)
                .putInt((int) length)
                .array());
        boolean complete = true;
        if (type == NBD_CMD_WRITE) {
            // The payload: as long as declared, or (for big or odd ones) shorter, as a broken client would.
            int sentLength = (int) Math.min(length, 64 * 1024);
            if (r.nextInt(10) == 0) {
                sentLength = r.nextInt(sentLength + 1);
            }
            byte[] payload = new byte[sentLength];
            r.nextBytes(payload);
            out.writeBytes(payload);
            complete = sentLength == length;
        }
        return complete
                ? new Expected(
                        cookie,
                        type,
                        expectedError(type, flags, offset, length, size, structured, trim, blockStatus),
                        offset,
                        length,
                        (flags & (NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE)) != 0)
                : null;
    }

    /**
     * The error the spec ("Error values", "Request message", the command flags) gives a request:
     * EINVAL for an unknown command or flag, a flag the command does not take (DF only on READ with
     * structured replies, NO_HOLE only on WRITE_ZEROES), TRIM the export does not offer, a READ or
     * WRITE of 0 or more than the advertised 32 MiB, an offset or length not a multiple of the
     * minimum block size (512), a READ or TRIM past the end; ENOSPC for a WRITE or WRITE_ZEROES
     * past the end; BLOCK_STATUS only after a metadata context was selected (REQ_ONE only on it), of
     * a length not 0. Where a request breaks several rules the server reports the first of these.
     */
    static int expectedError(
            int type,
            int flags,
            long offset,
            long length,
            long size,
            boolean structured,
            boolean trim,
            boolean blockStatus) {
        switch (type) {
            case NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_DISC -> {}
            case NBD_CMD_BLOCK_STATUS -> {
                if (!blockStatus) {
                    return NBD_EINVAL;
                }
            }
            default -> {
                return NBD_EINVAL;
            }
        }
        if ((flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE)) != 0) {
            return NBD_EINVAL;
        }
        if ((flags & NBD_CMD_FLAG_DF) != 0 && (type != NBD_CMD_READ || !structured)
                || (flags & NBD_CMD_FLAG_NO_HOLE) != 0 && type != NBD_CMD_WRITE_ZEROES
                || (flags & NBD_CMD_FLAG_REQ_ONE) != 0 && type != NBD_CMD_BLOCK_STATUS) {
            return NBD_EINVAL;
        }
        if (type == NBD_CMD_FLUSH) {
            return 0;
        }
        if (type == NBD_CMD_TRIM && !trim) {
            return NBD_EINVAL;
        }
        if (type == NBD_CMD_BLOCK_STATUS && length == 0) {
            return NBD_EINVAL;
        }
        if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && (length == 0 || length > MAX_PAYLOAD_BYTES)) {
            return NBD_EINVAL;
        }
        if (Long.remainderUnsigned(offset, 512) != 0 || length % 512 != 0) {
            return NBD_EINVAL;
        }
        boolean past = Long.compareUnsigned(offset, size) > 0
                || Long.compareUnsigned(offset + length, size) > 0
                || Long.compareUnsigned(offset + length, offset) < 0;
        if (past) {
            return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
        }
        return 0;
    }

    private static final int[] INTERESTING = {
        0,
        1,
        2,
        7,
        8,
        0x7fffffff,
        0x80000000,
        0xffffffff,
        4096,
        65536,
        65537,
        16 << 20,
        (16 << 20) + 1,
        MAX_PAYLOAD_BYTES,
        MAX_PAYLOAD_BYTES + 1,
        NBD_REQUEST_MAGIC
    };

    /** {@code count} mutations of {@code b} at or after {@code from}. */
    private static byte[] mutate(byte[] b, int from, Random r, int count) {
        for (int m = 0; m < count && b.length > from; m++) {
            int at = from + r.nextInt(b.length - from);
            switch (r.nextInt(6)) {
                case 0 -> b[at] ^= (byte) (1 << r.nextInt(8)); // a bit flip
                case 1 -> b[at] = (byte) r.nextInt(256);
                case 2 -> b = Arrays.copyOf(b, at); // truncation
                case 3 -> { // insertion
                    byte[] extra = new byte[1 + r.nextInt(16)];
                    r.nextBytes(extra);
                    byte[] n = new byte[b.length + extra.length];
                    System.arraycopy(b, 0, n, 0, at);
                    System.arraycopy(extra, 0, n, at, extra.length);
                    System.arraycopy(b, at, n, at + extra.length, b.length - at);
                    b = n;
                }
                case 4 -> { // an interesting 32-bit value over a field
                    if (at + 4 <= b.length) {
                        ByteBuffer.wrap(b, at, 4).putInt(INTERESTING[r.nextInt(INTERESTING.length)]);
                    }
                }
                default -> { // a stretch repeated
                    int len = Math.min(b.length - at, 1 + r.nextInt(64));
                    byte[] n = new byte[b.length + len];
                    System.arraycopy(b, 0, n, 0, at + len);
                    System.arraycopy(b, at, n, at + len, b.length - at);
                    b = n;
                }
            }
        }
        return b;
    }

    // ---- what the server may send --------------------------------------------------------------

    private static boolean knownRep(int type) {
        return switch (type) {
            case NBD_REP_ACK,
                    NBD_REP_SERVER,
                    NBD_REP_INFO,
                    NBD_REP_META_CONTEXT,
                    NBD_REP_ERR_UNSUP,
                    NBD_REP_ERR_POLICY,
                    NBD_REP_ERR_INVALID,
                    NBD_REP_ERR_UNKNOWN,
                    NBD_REP_ERR_TOO_BIG -> true;
            default -> false;
        };
    }

    private static boolean allowedError(int error) {
        return error == NBD_EINVAL || error == NBD_ENOSPC;
    }

    /** What {@link #validate} found: a problem (or null), whether transmission began, replies checked to the model. */
    record Validated(String problem, boolean transmission, int modelled) {
        static Validated bad(String problem) {
            return new Validated(problem, false, 0);
        }
    }

    /**
     * Checks the server's side of a fuzz connection: the greeting; option replies of known types
     * and sane lengths; the answer to EXPORT_NAME; then replies with a known magic, only the spec's
     * errors and structured chunks that add up. Simple replies to reads carry data whose length only
     * the request knows: without {@code expected} checking stops at the first successful one. With
     * {@code expected} (a stream sent unmutated) every reply is parsed and must be exactly the
     * expected one for its cookie, and every expected reply must come.
     */
    static Validated validate(byte[] out, long total, Expectation expected) {
        ByteBuffer b = ByteBuffer.wrap(out);
        if (b.remaining() < 18) {
            return Validated.bad("a greeting of " + b.remaining() + " bytes");
        }
        if (b.getLong() != NBDMAGIC
                || b.getLong() != IHAVEOPT
                || b.getShort() != (short) (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES)) {
            return Validated.bad("a wrong greeting");
        }
        boolean structured = false;
        boolean transmission = false;
        while (b.remaining() >= 8 && b.getLong(b.position()) == NBD_REP_MAGIC) {
            if (b.remaining() < 20) {
                return Validated.bad("a truncated option reply header");
            }
            b.getLong();
            int option = b.getInt();
            int type = b.getInt();
            int length = b.getInt();
            if (!knownRep(type)) {
                return Validated.bad("option reply type 0x" + Integer.toHexString(type));
            }
            if (length < 0 || length > 4 + MAX_STRING_BYTES || length > b.remaining()) {
                return Validated.bad("option reply of " + Integer.toUnsignedString(length) + " bytes with "
                        + b.remaining() + " left");
            }
            if (type == NBD_REP_INFO) {
                int info = Short.toUnsignedInt(b.getShort(b.position()));
                if (info == NBD_INFO_EXPORT && length != 12 || info == NBD_INFO_BLOCK_SIZE && length != 14) {
                    return Validated.bad("NBD_REP_INFO " + info + " of " + length + " bytes");
                }
                if (info == NBD_INFO_EXPORT) {
                    long size = b.getLong(b.position() + 2);
                    if (size != VOL_SIZE && size != LIN_SIZE) {
                        return Validated.bad("an export of " + size + " bytes");
                    }
                }
            }
            if ((type & NBD_REP_FLAG_ERROR) == 0
                    && type != NBD_REP_ACK
                    && option != NBD_OPT_LIST
                    && option != NBD_OPT_INFO
                    && option != NBD_OPT_GO
                    && !(type == NBD_REP_META_CONTEXT
                            && (option == NBD_OPT_LIST_META_CONTEXT || option == NBD_OPT_SET_META_CONTEXT))) {
                return Validated.bad(rep(type) + " to option " + Integer.toUnsignedString(option));
            }
            b.position(b.position() + length);
            if (type == NBD_REP_ACK && option == NBD_OPT_STRUCTURED_REPLY) {
                structured = true;
            }
            if (type == NBD_REP_ACK && option == NBD_OPT_ABORT) {
                return b.hasRemaining() ? Validated.bad("data after the ACK of ABORT") : new Validated(null, false, 0);
            }
            if (type == NBD_REP_ACK && option == NBD_OPT_GO) {
                transmission = true;
                break;
            }
        }
        if (!transmission && b.hasRemaining()) {
            // The answer to EXPORT_NAME: size and flags, then 124 zeroes unless NO_ZEROES was asked for.
            if (b.remaining() < 10) {
                return Validated.bad(b.remaining() + " stray bytes in the negotiation");
            }
            long size = b.getLong();
            int flags = Short.toUnsignedInt(b.getShort());
            if (size != VOL_SIZE && size != LIN_SIZE || (flags & NBD_FLAG_HAS_FLAGS) == 0) {
                return Validated.bad(
                        "an EXPORT_NAME answer of size " + size + ", flags 0x" + Integer.toHexString(flags));
            }
            if (b.remaining() >= 124 && !startsWithReplyMagic(b)) {
                for (int i = 0; i < 124; i++) {
                    if (b.get() != 0) {
                        return Validated.bad("non-zero padding after EXPORT_NAME");
                    }
                }
            }
            transmission = true;
        }
        if (!transmission) {
            return new Validated(expected == null ? null : "no transmission", false, 0);
        }
        if (expected != null && expected.structured() != structured) {
            return Validated.bad("structured replies " + (structured ? "on" : "off") + " against the request");
        }
        java.util.Map<Long, Expected> open = expected == null ? null : new java.util.HashMap<>(expected.replies());
        java.util.Map<Long, Long> dataSoFar = new java.util.HashMap<>(); // by cookie: a structured read's bytes so far
        int modelled = 0;
        while (b.hasRemaining()) {
            if (b.remaining() < 4) {
                return Validated.bad("a truncated reply");
            }
            int magic = b.getInt();
            if (magic == NBD_SIMPLE_REPLY_MAGIC) {
                if (b.remaining() < 12) {
                    return Validated.bad("a truncated simple reply");
                }
                int error = b.getInt();
                long cookie = b.getLong();
                if (error != 0 && !allowedError(error)) {
                    return Validated.bad("a simple reply with error " + error);
                }
                if (open == null) {
                    if (error == 0 && !structured) {
                        return new Validated(null, true, modelled); // read data may follow, of a length unknown here
                    }
                    continue;
                }
                Expected e = open.remove(cookie);
                if (e == null) {
                    return Validated.bad("a simple reply to cookie " + cookie + ", which expects none (now)");
                }
                if (e.error() != error) {
                    return Validated.bad(commandName(e.type()) + " at " + Long.toUnsignedString(e.offset()) + "+"
                            + e.length() + ": " + errno(error) + " where the spec says " + errno(e.error()));
                }
                if (structured && e.type() == NBD_CMD_READ) {
                    return Validated.bad("a simple reply to a READ with structured replies");
                }
                if (e.type() == NBD_CMD_READ && error == 0) {
                    if (b.remaining() < e.length() && b.limit() == total) {
                        return Validated.bad("a READ reply with " + b.remaining() + " of " + e.length() + " bytes");
                    }
                    if (b.remaining() < e.length()) {
                        return new Validated(null, true, modelled); // past what was kept
                    }
                    b.position(b.position() + (int) e.length());
                }
                modelled++;
            } else if (magic == NBD_STRUCTURED_REPLY_MAGIC && structured) {
                if (b.remaining() < 16) {
                    return Validated.bad("a truncated structured reply");
                }
                int flags = Short.toUnsignedInt(b.getShort());
                int type = Short.toUnsignedInt(b.getShort());
                long cookie = b.getLong();
                int length = b.getInt();
                if (flags != 0 && flags != NBD_REPLY_FLAG_DONE || type == NBD_REPLY_TYPE_ERROR && flags == 0) {
                    return Validated.bad("a structured reply of type " + type + " with flags " + flags);
                }
                if (length < 0 || length > b.remaining() && b.limit() == total) {
                    return Validated.bad("a structured reply of " + Integer.toUnsignedString(length) + " bytes, "
                            + b.remaining() + " left");
                }
                if (length > b.remaining()) {
                    return new Validated(null, true, modelled); // past what was kept
                }
                int error = 0;
                switch (type) {
                    case NBD_REPLY_TYPE_NONE -> {
                        if (length != 0) {
                            return Validated.bad("a NONE chunk of " + length + " bytes");
                        }
                    }
                    case NBD_REPLY_TYPE_OFFSET_DATA -> {
                        if (length <= 8 || length > 8 + MAX_PAYLOAD_BYTES) {
                            return Validated.bad("an OFFSET_DATA chunk of " + length + " bytes");
                        }
                    }
                    case NBD_REPLY_TYPE_BLOCK_STATUS -> {
                        if (length < 12 || (length - 4) % 8 != 0 || b.getInt(b.position()) != 1) {
                            return Validated.bad("a BLOCK_STATUS chunk of " + length + " bytes for context "
                                    + b.getInt(b.position()));
                        }
                    }
                    case NBD_REPLY_TYPE_ERROR -> {
                        error = b.getInt(b.position());
                        int message = Short.toUnsignedInt(b.getShort(b.position() + 4));
                        if (!allowedError(error) || message > MAX_STRING_BYTES || length != 6 + message) {
                            return Validated.bad(
                                    "an ERROR chunk: error " + error + ", message " + message + ", length " + length);
                        }
                    }
                    default -> {
                        return Validated.bad("a structured reply of type " + type);
                    }
                }
                if (open != null) {
                    // A read's data may come in several chunks (in order here), the last one DONE unless an
                    // error chunk ends the reply; with DF in one.
                    Expected e = open.get(cookie);
                    if (e == null) {
                        return Validated.bad("a structured reply to cookie " + cookie + ", which expects none (now)");
                    }
                    long got = dataSoFar.getOrDefault(cookie, 0L);
                    if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
                        if (e.type() != NBD_CMD_READ
                                || length - 8 > e.length() - got
                                || b.getLong(b.position()) != e.offset() + got
                                || e.oneChunk() && length != 8 + e.length()) {
                            return Validated.bad("an OFFSET_DATA chunk of " + length + " bytes at "
                                    + b.getLong(b.position())
                                    + " after " + got + " for " + commandName(e.type()) + " at " + e.offset() + "+"
                                    + e.length() + (e.oneChunk() ? " with DF" : ""));
                        }
                        got += length - 8;
                        dataSoFar.put(cookie, got);
                    } else if (got > 0 && type != NBD_REPLY_TYPE_ERROR) {
                        return Validated.bad("a chunk of type " + type + " after data chunks");
                    } else if (type == NBD_REPLY_TYPE_BLOCK_STATUS) {
                        String wrong = blockStatusProblem(b, length, e);
                        if (wrong != null) {
                            return Validated.bad(wrong);
                        }
                    }
                    if (flags == NBD_REPLY_FLAG_DONE) {
                        open.remove(cookie);
                        dataSoFar.remove(cookie);
                        if (e.error() != error) {
                            return Validated.bad(commandName(e.type()) + " at " + Long.toUnsignedString(e.offset())
                                    + "+" + e.length() + ": " + errno(error) + " where the spec says "
                                    + errno(e.error()));
                        }
                        if (error == 0 && e.type() == NBD_CMD_READ && got != e.length()) {
                            return Validated.bad("a READ reply of " + got + " of " + e.length() + " bytes");
                        }
                        modelled++;
                    }
                }
                b.position(b.position() + length);
            } else {
                return Validated.bad(
                        "reply magic 0x" + Integer.toHexString(magic) + (structured ? "" : " (simple replies)"));
            }
        }
        if (open != null && !open.isEmpty()) {
            Expected e = open.values().iterator().next();
            return Validated.bad(open.size() + " requests without a reply, e.g. " + commandName(e.type()) + " at "
                    + Long.toUnsignedString(e.offset()) + "+" + e.length());
        }
        return new Validated(null, true, modelled);
    }

    /**
     * What is wrong with a BLOCK_STATUS chunk (at {@code b}'s position, {@code length} bytes) for
     * {@code e}, or null: base:allocation's extents must be of whole sectors, HOLE|ZERO or data,
     * within the request, one with REQ_ONE.
     */
    private static String blockStatusProblem(ByteBuffer b, int length, Expected e) {
        if (e.type() != NBD_CMD_BLOCK_STATUS) {
            return "a BLOCK_STATUS chunk for " + commandName(e.type());
        }
        int extents = (length - 4) / 8;
        if (e.oneChunk() && extents != 1) {
            return extents + " extents with REQ_ONE";
        }
        long total = 0;
        for (int i = 0; i < extents; i++) {
            long extent = Integer.toUnsignedLong(b.getInt(b.position() + 4 + 8 * i));
            int flags = b.getInt(b.position() + 8 + 8 * i);
            if (extent == 0 || extent % 512 != 0 || flags != 0 && flags != 3) {
                return "a block status extent of " + extent + " bytes, flags " + flags;
            }
            total += extent;
        }
        return total > e.length() ? "extents of " + total + " bytes for BLOCK_STATUS of " + e.length() : null;
    }

    private static boolean startsWithReplyMagic(ByteBuffer b) {
        int magic = b.getInt(b.position());
        return magic == NBD_SIMPLE_REPLY_MAGIC || magic == NBD_STRUCTURED_REPLY_MAGIC;
    }
}
