package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.FaultyDevice.PageCacheRead;
import dmsnap.target.CacheMode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A queue-depth-1 client's large read of a device that reads through the page cache (the
 * {@code writeback} cache mode) reaches the file as one read of the whole request, on the
 * connection's thread, not as pieces read at once on several threads (which reach the file out of
 * order and cost the kernel's readahead); its reply still comes a data chunk per piece, and a
 * failed piece still ends it with its error after the pieces before it. The origin's file is
 * opened through a device whose page-cache view records every read: where, how long, on which
 * thread, and how many were in progress at once.
 */
class NbdPageCacheReadsTest {
    private static final int LENGTH = 1 << 20;
    private static final byte[] BASE = NbdFixture.pattern(NbdFixture.SECTORS);

    @TempDir
    Path dir;

    /** The origin's base, whose page-cache view records its reads; set when the fixture opens it. */
    private FaultyDevice origin;

    /** The fixture's devices in {@code mode}, the base opened through a recording {@link FaultyDevice}. */
    private NbdFixture fixture(CacheMode mode) throws Exception {
        return new NbdFixture(dir, Duration.ofMinutes(1), mode, real -> {
            origin = new FaultyDevice(FileDevice.open(real, FileDevice.Option.BUFFERED)).recordsPageCacheReads();
            return origin;
        });
    }

    /** A structured client of {@code export} whose first request (always handed on) is done. */
    private NbdTestClient queueDepthOne(NbdFixture fx, String export) throws Exception {
        NbdTestClient c = fx.open(export, true);
        assertArrayEquals(Arrays.copyOf(BASE, 4096), c.read(0, 4096));
        origin.takePageCacheReads();
        return c;
    }

    /** Reads of the origin covering byte {@code failAt} fail with EIO until it heals. */
    private void failReadsCovering(long failAt) {
        origin.failWhen(r -> r.op() == FaultyDevice.Op.READ
                && failAt >= r.offsetBytes()
                && failAt < r.offsetBytes() + r.lengthBytes());
    }

    /** The first {@code count} pieces of a read at {@code offset}, read one at a time. */
    private static List<PageCacheRead> pieces(long offset, int count) {
        List<PageCacheRead> expected = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            expected.add(new PageCacheRead(
                    offset + i * NbdConnection.READ_PIECE_BYTES, NbdConnection.READ_PIECE_BYTES, "", 1));
        }
        return expected;
    }

    private static PageCacheRead whole(long offset) {
        return new PageCacheRead(offset, LENGTH, "", 1);
    }

    /** The recorded reads, without the thread: the one a piece ran on is checked on its own. */
    private static List<PageCacheRead> ranges(List<PageCacheRead> reads) {
        return reads.stream()
                .map(r -> new PageCacheRead(r.offsetBytes(), r.lengthBytes(), "", r.inProgress()))
                .toList();
    }

    @Test
    void aLargeReadThroughThePageCacheIsOneReadOnTheConnectionsThread() throws Exception {
        int count = (int) (LENGTH / NbdConnection.READ_PIECE_BYTES);
        try (NbdFixture fx = fixture(CacheMode.WRITEBACK)) {
            for (String export : new String[] {"vol", "snap"}) {
                try (NbdTestClient c = queueDepthOne(fx, export)) {
                    long offset = 2 << 20;
                    c.sendRead(7, offset, LENGTH);
                    NbdTestClient.Reply r = c.reply();
                    assertEquals(0, r.error(), export);
                    assertArrayEquals(Arrays.copyOfRange(BASE, (int) offset, (int) offset + LENGTH), r.data(), export);
                    assertEquals(count, r.dataChunks(), export + ": a data chunk per piece");
                    List<PageCacheRead> reads = origin.takePageCacheReads();
                    assertEquals(List.of(whole(offset)), ranges(reads), export + ": " + reads);
                    assertTrue(reads.getFirst().thread().startsWith("dmsnap-nbd-conn-"), export + ": " + reads);
                }
            }
        }
    }

    @Test
    void aFailedPieceEndsTheReplyAfterThePiecesBeforeIt() throws Exception {
        try (NbdFixture fx = fixture(CacheMode.WRITEBACK);
                NbdTestClient c = queueDepthOne(fx, "snap")) {
            long offset = 1 << 20;
            failReadsCovering(offset + 2 * NbdConnection.READ_PIECE_BYTES + 4096);
            c.sendRead(8, offset, LENGTH);
            NbdTestClient.Reply r = c.reply();
            assertEquals(NbdProtocol.NBD_EIO, r.error());
            assertNull(r.data());
            assertEquals(2, r.dataChunks(), "the two pieces before the failed one");
            assertEquals(3, r.chunks(), "then the error chunk");
            List<PageCacheRead> expected = new ArrayList<>(List.of(whole(offset)));
            expected.addAll(pieces(offset, 3)); // read again piece by piece, up to the failed one
            assertEquals(expected, ranges(origin.takePageCacheReads()));
            origin.heal();
            assertArrayEquals(Arrays.copyOf(BASE, 4096), c.read(0, 4096), "the connection goes on");
        }
    }

    @Test
    void withoutThePageCacheTheViewIsNotRead() throws Exception {
        try (NbdFixture fx = fixture(CacheMode.NONE);
                NbdTestClient c = queueDepthOne(fx, "snap")) {
            assertArrayEquals(Arrays.copyOfRange(BASE, 0, LENGTH), c.read(0, LENGTH));
            assertTrue(origin.takePageCacheReads().isEmpty(), "none reads the origin with O_DIRECT");
        }
    }
}
