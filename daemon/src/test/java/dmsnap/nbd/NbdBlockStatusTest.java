package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.table.TableParser;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Block status (proto.md "Metadata querying", issue 19): meta context negotiation, BLOCK_STATUS
 * replies for base:allocation and dmsnap:changed:S on every kind of target, and the refusals a
 * hostile or careless client gets, each leaving the connection usable.
 */
class NbdBlockStatusTest {
    private static final long SIZE = NbdFixture.SECTORS * 512L;
    private static final int HOLE_ZERO = 3;
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    private NbdFixture fx;

    private void start(boolean qemuContexts) throws Exception {
        fx = new NbdFixture(
                dir,
                new NbdServer.Settings(Duration.ofSeconds(60), 1024, 16, 64L << 20, new ManualClock())
                        .withQemuContexts(qemuContexts),
                null);
    }

    @AfterEach
    void stop() throws Exception {
        if (fx != null) {
            fx.close();
        }
    }

    /** Connected, greeted, with structured replies, before GO. */
    private NbdTestClient handshake() throws Exception {
        NbdTestClient c = NbdTestClient.connect(fx.server.socketPath());
        c.greeting();
        c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
        assertEquals(NBD_REP_ACK, c.optionReply().type());
        c.structured = true;
        return c;
    }

    /** SET_META_CONTEXT for {@code export} with {@code queries}, then GO to it. */
    private NbdTestClient open(String export, String... queries) throws Exception {
        NbdTestClient c = handshake();
        List<String> set = c.metaContext(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData(export, queries));
        assertEquals("ACK", set.getLast(), "SET " + List.of(queries));
        assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, export).type());
        return c;
    }

    private static NbdTestClient.Reply blockStatus(NbdTestClient c, int flags, long offset, long length)
            throws Exception {
        c.request(flags, NBD_CMD_BLOCK_STATUS, 77, offset, length, null);
        return c.reply();
    }

    private static List<String> list(NbdTestClient c, String export, String... queries) throws Exception {
        return c.metaContext(NBD_OPT_LIST_META_CONTEXT, NbdTestClient.metaContextData(export, queries));
    }

    @Test
    void listOffersBaseAllocationEverywhereAndChangesAgainstTheOtherSnapshotsOfTheOrigin() throws Exception {
        start(false);
        try (NbdTestClient c = handshake()) {
            assertEquals(List.of("0 base:allocation", "0 dmsnap:changed:snap", "ACK"), list(c, "vol"));
            assertEquals(List.of("0 base:allocation", "ACK"), list(c, "snap"), "a snapshot is not its own baseline");
            assertEquals(List.of("0 base:allocation", "ACK"), list(c, "lin"));
            assertEquals(List.of("0 base:allocation", "ACK"), list(c, "vol", "base:"));
            assertEquals(List.of("0 dmsnap:changed:snap", "ACK"), list(c, "vol", "dmsnap:changed:"));
            assertEquals(List.of("ACK"), list(c, "vol", "qemu:", "nope:thing", "base:allocationx"), "not offered");
            assertEquals(List.of("ERROR 0x" + Integer.toHexString(NBD_REP_ERR_UNKNOWN)), list(c, "nope"));
        }
    }

    @Test
    void theQemuContextsComeWithTheOptIn() throws Exception {
        start(true);
        try (NbdTestClient c = handshake()) {
            assertEquals(
                    List.of(
                            "0 base:allocation",
                            "0 dmsnap:changed:snap",
                            "0 qemu:allocation-depth",
                            "0 qemu:dirty-bitmap:snap",
                            "ACK"),
                    list(c, "vol"));
        }
        try (NbdTestClient snap = open("snap", "qemu:allocation-depth")) {
            assertEquals(0, snap.write(3 * 4096, new byte[4096]));
            NbdTestClient.Reply r = blockStatus(snap, 0, 0, SIZE);
            assertArrayEquals(
                    new int[] {12288, 2, 4096, 1, (int) SIZE - 16384, 2},
                    r.blockStatus().get(1));
        }
    }

    @Test
    void blockStatusReportsEachSelectedContextInRuns() throws Exception {
        start(false);
        try (NbdTestClient vol = open("vol", "base:allocation", "dmsnap:changed:snap")) {
            assertEquals(0, vol.write(10 * 4096, new byte[4096])); // chunk 10 copied out to snap
            NbdTestClient.Reply all = blockStatus(vol, 0, 0, SIZE);
            assertEquals(0, all.error(), all.message());
            assertArrayEquals(new int[] {(int) SIZE, 0}, all.blockStatus().get(1), "the base file is all data");
            assertArrayEquals(
                    new int[] {40960, 0, 4096, 1, (int) SIZE - 45056, 0},
                    all.blockStatus().get(2),
                    "dirty: the chunk written since snap");
            assertEquals(2, all.chunks());
            NbdTestClient.Reply one = blockStatus(vol, NBD_CMD_FLAG_REQ_ONE, 0, SIZE);
            assertArrayEquals(new int[] {40960, 0}, one.blockStatus().get(2), "REQ_ONE: one extent");
            NbdTestClient.Reply part = blockStatus(vol, 0, 40960 + 512, 8192);
            assertArrayEquals(new int[] {3584, 1, 4608, 0}, part.blockStatus().get(2), "bounded by the request");
        }
    }

    /**
     * Refreshes of the baseline (its table reloaded on the same COW: the live store handed over)
     * while a client maps the origin's changes since it: every reply is the map, never EIO, and
     * a client negotiating meanwhile is offered the baseline. Each handover's critical section is
     * where a walk used to find no valid baseline (or the source's new, empty table); the refresh
     * count makes many walks meet one.
     */
    @Test
    void theMapStaysRightWhileItsBaselineIsRefreshed() throws Exception {
        start(false);
        String table = "0 " + NbdFixture.SECTORS + " snapshot " + fx.base + " " + fx.cow + " P 8";
        try (NbdTestClient vol = open("vol", "dmsnap:changed:snap");
                var refresher = java.util.concurrent.Executors.newSingleThreadExecutor()) {
            assertEquals(0, vol.write(10 * 4096, new byte[4096]));
            assertEquals(0, vol.write(1000 * 4096, new byte[4096]));
            int[] map = {40960, 0, 4096, 1, 4050944, 0, 4096, 1, (int) SIZE - 4100096, 0};
            java.util.concurrent.Future<?> refreshes = refresher.submit(() -> {
                for (int i = 0; i < 500; i++) {
                    fx.dm.load("snap", TableParser.parse(table));
                    fx.dm.get("snap").resume();
                }
                return null;
            });
            int maps = 0;
            while (!refreshes.isDone() || maps == 0) {
                NbdTestClient.Reply r = blockStatus(vol, 0, 0, SIZE);
                assertEquals(0, r.error(), "map " + maps + ": " + r.message());
                assertArrayEquals(map, r.blockStatus().get(1), "map " + maps);
                if (maps++ % 16 == 0) {
                    try (NbdTestClient other = handshake()) {
                        assertEquals(List.of("0 dmsnap:changed:snap", "ACK"), list(other, "vol", "dmsnap:changed:"));
                    }
                }
            }
            refreshes.get();
        }
    }

    @Test
    void holesAreReportedThroughLinearZeroAndStackedTablesAndAnErrorTargetFails() throws Exception {
        start(false);
        Path sparse = dir.resolve("sparse.img");
        try (RandomAccessFile f = new RandomAccessFile(sparse.toFile(), "rw")) {
            f.setLength(8 * MIB);
            f.seek(2 * MIB);
            f.write(new byte[(int) MIB]);
        }
        fx.dm.create("sparse", null, TableParser.parse("0 16384 linear " + sparse + " 0"));
        fx.dm.create("stack", null, TableParser.parse("0 16384 linear dm:sparse 0"));
        fx.dm.create("z", null, TableParser.parse("0 2048 zero"));
        fx.dm.create("err", null, TableParser.parse("0 2048 error"));
        int[] expected = {(int) (2 * MIB), HOLE_ZERO, (int) MIB, 0, (int) (5 * MIB), HOLE_ZERO};
        for (String name : List.of("sparse", "stack")) {
            try (NbdTestClient c = open(name, "base:allocation")) {
                assertArrayEquals(
                        expected, blockStatus(c, 0, 0, 8 * MIB).blockStatus().get(1), name);
            }
        }
        try (NbdTestClient c = open("z", "base:allocation")) {
            assertArrayEquals(
                    new int[] {(int) MIB, HOLE_ZERO},
                    blockStatus(c, 0, 0, MIB).blockStatus().get(1));
        }
        try (NbdTestClient c = open("err", "base:")) {
            NbdTestClient.Reply r = blockStatus(c, 0, 0, MIB);
            assertEquals(NBD_EIO, r.error(), "as its reads");
            assertEquals(
                    0,
                    blockStatus(c, NBD_CMD_FLAG_REQ_ONE, 0, 512).blockStatus().size());
        }
    }

    @Test
    void badOptionsAreRefusedAndTheNegotiationGoesOn() throws Exception {
        start(false);
        String invalid = "ERROR 0x" + Integer.toHexString(NBD_REP_ERR_INVALID);
        try (NbdTestClient c = NbdTestClient.connect(fx.server.socketPath())) {
            c.greeting();
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE);
            assertEquals(
                    List.of(invalid),
                    c.metaContext(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("vol", "base:allocation")),
                    "SET before structured replies");
            c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(NBD_REP_ACK, c.optionReply().type());
            byte[] good = NbdTestClient.metaContextData("vol", "base:allocation");
            List<byte[]> malformed = List.of(
                    new byte[3],
                    java.nio.ByteBuffer.allocate(8).putInt(100).putInt(0).array(), // name beyond the data
                    java.nio.ByteBuffer.allocate(11)
                            .putInt(3)
                            .put("vol".getBytes())
                            .putInt(-1)
                            .array(), // 2^32-1 queries
                    java.nio.ByteBuffer.allocate(17)
                            .putInt(3)
                            .put("vol".getBytes())
                            .putInt(1)
                            .putInt(1000)
                            .put((byte) 'x')
                            .array(), // query beyond the data
                    java.util.Arrays.copyOf(good, good.length + 2)); // bytes after the last query
            for (byte[] data : malformed) {
                assertEquals(List.of(invalid), c.metaContext(NBD_OPT_SET_META_CONTEXT, data));
                assertEquals(List.of(invalid), c.metaContext(NBD_OPT_LIST_META_CONTEXT, data));
            }
            assertEquals(
                    List.of("ERROR 0x" + Integer.toHexString(NBD_REP_ERR_TOO_BIG)),
                    c.metaContext(
                            NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("vol", "base:" + "a".repeat(4096))),
                    "a query over 4 KiB");
            assertEquals(
                    List.of("ERROR 0x" + Integer.toHexString(NBD_REP_ERR_UNKNOWN)),
                    c.metaContext(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("nope", "base:allocation")));
            assertEquals(List.of("1 base:allocation", "ACK"), c.metaContext(NBD_OPT_SET_META_CONTEXT, good));
        }
    }

    @Test
    void blockStatusIsRefusedWithoutAContextForTheExportAndOutsideTheRules() throws Exception {
        start(false);
        try (NbdTestClient none = NbdTestClient.open(fx.server.socketPath(), "vol", true)) {
            assertEquals(NBD_EINVAL, blockStatus(none, 0, 0, 4096).error(), "never negotiated");
        }
        try (NbdTestClient empty = open("vol")) {
            assertEquals(NBD_EINVAL, blockStatus(empty, 0, 0, 4096).error(), "an empty SET selects nothing");
        }
        try (NbdTestClient other = handshake()) {
            other.metaContext(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("snap", "base:allocation"));
            assertEquals(NBD_REP_ACK, other.go(NBD_OPT_GO, "vol").type());
            assertEquals(NBD_EINVAL, blockStatus(other, 0, 0, 4096).error(), "contexts of another export");
        }
        try (NbdTestClient c = open("vol", "base:allocation")) {
            assertEquals(NBD_EINVAL, blockStatus(c, 0, 0, 0).error(), "zero length");
            assertEquals(NBD_EINVAL, blockStatus(c, 0, SIZE - 4096, 8192).error(), "past the end");
            assertEquals(NBD_EINVAL, blockStatus(c, 0, 100, 4096).error(), "unaligned");
            assertEquals(NBD_EINVAL, blockStatus(c, 1 << 9, 0, 4096).error(), "an unknown flag");
            c.request(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 5, 0, 4096, null);
            assertEquals(NBD_EINVAL, c.reply().error(), "REQ_ONE on a read");
            assertArrayEquals(
                    new int[] {4096, 0},
                    blockStatus(c, 0, SIZE - 4096, 4096).blockStatus().get(1));
        }
    }
}
