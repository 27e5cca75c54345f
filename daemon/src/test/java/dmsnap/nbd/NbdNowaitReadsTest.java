package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.NBD_CMD_READ;
import static dmsnap.nbd.NbdProtocol.NBD_CMD_WRITE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.target.CacheMode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A read the reader would hand to an I/O thread is first tried from the page cache on the
 * reader's thread ({@link NowaitReads}): served there when the page cache holds it (its reply
 * sent from there, or queued for the writer when it has replies to send; {@link
 * NbdServer#cachedReads()} counts it), else handed on as before,
 * with the same data and errors either way. The origin's base is a {@link FaultyDevice} whose
 * page cache holds what a test says; the first request of a connection is never done inline, so
 * it is the one whose path is certain. No timing: which later requests of a burst go inline
 * depends on when replies go out, so a burst is checked by its data and its totals.
 */
class NbdNowaitReadsTest {
    private static final byte[] BASE = NbdFixture.pattern(NbdFixture.SECTORS);

    @TempDir
    Path dir;

    /** The origin's base; set when the fixture opens it. */
    private FaultyDevice origin;

    private NbdFixture fixture() throws Exception {
        return new NbdFixture(dir, Duration.ofMinutes(1), CacheMode.WRITEBACK, real -> {
            origin = new FaultyDevice(FileDevice.open(real, FileDevice.Option.BUFFERED));
            return origin;
        });
    }

    private static byte[] base(long offset, int length) {
        return Arrays.copyOfRange(BASE, (int) offset, (int) offset + length);
    }

    @Test
    void aCachedReadIsServedOnTheReadersThread() throws Exception {
        try (NbdFixture fx = fixture();
                NbdTestClient c = fx.open("vol", true)) {
            origin.pageCacheHolds(r -> true);
            long inline = fx.server.inlineRequests();
            assertArrayEquals(base(8192, 4096), c.read(8192, 4096));
            assertEquals(inline, fx.server.inlineRequests(), "the first request is not done inline");
            assertEquals(1, fx.server.cachedReads());
            assertEquals(1, origin.cachedReadsServed());
            assertTrue(origin.lastCachedReadThread().startsWith("dmsnap-nbd-conn-"), origin.lastCachedReadThread());
            assertEquals(1, fx.dm.get("vol").ioStats().totals().cachedReads());
        }
    }

    @Test
    void aReadThatWouldWaitIsHandedOnAndReadsTheSameData() throws Exception {
        try (NbdFixture fx = fixture();
                NbdTestClient c = fx.open("snap", false)) {
            assertArrayEquals(base(65536, 8192), c.read(65536, 8192)); // nothing is cached
            assertEquals(1, origin.cachedReadTries(), "tried first");
            assertEquals(0, origin.cachedReadsServed());
            assertEquals(0, fx.server.cachedReads());
        }
    }

    @Test
    void aPipelinedBurstReadsTheRightDataWhateverServesEachRead() throws Exception {
        try (NbdFixture fx = fixture()) {
            // Chunks written through the snapshot (their exceptions not committed yet: writeback
            // defers them) read back their new data, the others the origin's; half the origin's
            // chunks are cached.
            byte[] written = new byte[4096];
            Arrays.fill(written, (byte) 0x5e);
            try (NbdTestClient c = fx.open("snap", true)) {
                for (int chunk = 0; chunk < 64; chunk += 4) {
                    assertEquals(0, c.write(chunk * 4096L, written));
                }
            }
            origin.pageCacheHolds(r -> r.offsetBytes() / 4096 % 2 == 0);
            long cached = fx.server.cachedReads();
            long inline = fx.server.inlineRequests();
            long[] offsets = new long[16];
            for (int i = 0; i < offsets.length; i++) {
                offsets[i] = (6 + 3 * i) * 4096L; // chunks 6 (cached), 9 (not), 12 (written), ...
            }
            try (NbdTestClient c = fx.open("snap", true)) {
                c.sendReads(100, offsets, 4096);
                for (int i = 0; i < offsets.length; i++) {
                    NbdTestClient.Reply r = c.reply();
                    assertEquals(0, r.error());
                    long offset = offsets[(int) (r.cookie() - 100)];
                    byte[] expected = offset / 4096 % 4 == 0 ? written : base(offset, 4096);
                    assertArrayEquals(expected, r.data(), "read at " + offset);
                }
                assertTrue(fx.server.cachedReads() > cached, "the first read (chunk 6) is served from the page cache");
                assertTrue(origin.lastCachedReadThread().startsWith("dmsnap-nbd-conn-"));
                long onReader = fx.server.cachedReads() - cached + fx.server.inlineRequests() - inline;
                assertTrue(onReader <= offsets.length, "each read is served once");
                assertArrayEquals(base(4096, 4096), c.read(4096, 4096), "the connection goes on");
            }
        }
    }

    /**
     * A deep client's cached reads have their replies sent at once from the reader's thread, which
     * leaves nothing unanswered; its later requests must still not count as come alone, or one
     * would be done inline and hold the reader (a write, here). The burst is one socket write, so
     * the look at the socket after the first reply finds the rest whatever the timing: every read
     * is served from the page cache, none of the burst inline.
     */
    @Test
    void aDeepClientsBurstOfCachedReadsAndAWriteIsNotDoneInline() throws Exception {
        try (NbdFixture fx = fixture();
                NbdTestClient c = fx.open("vol", true)) {
            origin.pageCacheHolds(r -> true);
            long inline = fx.server.inlineRequests();
            byte[] written = new byte[4096];
            Arrays.fill(written, (byte) 0x3c);
            long[] reads = {0, 8192, 16384, 24576, 32768, 40960};
            java.nio.ByteBuffer[] burst = new java.nio.ByteBuffer[reads.length + 1];
            for (int i = 0; i < reads.length; i++) {
                burst[i < 3 ? i : i + 1] = c.encoded(0, NBD_CMD_READ, 100 + i, reads[i], 4096, null);
            }
            burst[3] = c.encoded(0, NBD_CMD_WRITE, 99, 65536, 4096, written);
            c.sendTogether(burst);
            for (int i = 0; i < burst.length; i++) {
                NbdTestClient.Reply r = c.reply();
                assertEquals(0, r.error());
                if (r.cookie() != 99) {
                    long offset = reads[(int) (r.cookie() - 100)];
                    assertArrayEquals(base(offset, 4096), r.data(), "read at " + offset);
                }
            }
            assertEquals(inline, fx.server.inlineRequests(), "none of the burst is done inline");
            assertEquals(reads.length, fx.server.cachedReads(), "every read is served from the page cache");
            assertArrayEquals(written, c.read(65536, 4096), "the write is there");
        }
    }

    @Test
    void anInjectedReadErrorFailsACachedRead() throws Exception {
        try (NbdFixture fx = fixture();
                NbdTestClient c = fx.open("vol", true)) {
            origin.pageCacheHolds(r -> true);
            origin.failWhen(r -> r.op() == FaultyDevice.Op.READ && r.offsetBytes() == 12288);
            c.sendRead(9, 12288, 4096);
            NbdTestClient.Reply r = c.reply();
            assertEquals(NbdProtocol.NBD_EIO, r.error());
            assertTrue(r.message().contains("injected fault"), r.message());
            assertEquals(1, origin.cachedReadsServed(), "the page cache served it, and the fault applied");
            assertEquals(1, fx.server.cachedReads());
            origin.heal();
            assertArrayEquals(base(12288, 4096), c.read(12288, 4096), "the connection goes on");
        }
    }
}
