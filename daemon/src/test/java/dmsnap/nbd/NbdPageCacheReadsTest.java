package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.Device;
import dmsnap.store.device.Extent;
import dmsnap.store.device.FileDevice;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
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
    private static final int SECTORS = 8192;
    private static final int LENGTH = 1 << 20;

    @TempDir
    Path dir;

    /** One read of the page-cache view: its range, its thread, the reads in progress when it began. */
    record Read(long offsetBytes, long lengthBytes, String thread, int inProgress) {}

    /** A device whose {@link #buffered()} view records its reads and fails those at {@link #failAt}. */
    static final class RecordingDevice implements Device {
        final Device inner;
        final List<Read> reads = new ArrayList<>();
        final AtomicInteger inProgress = new AtomicInteger();
        volatile long failAt = -1;
        private final Device view;

        RecordingDevice(Device inner) throws IOException {
            this.inner = inner;
            Device buffered = inner.buffered();
            this.view = new Device() {
                @Override
                public String name() {
                    return buffered.name();
                }

                @Override
                public long sizeBytes() {
                    return buffered.sizeBytes();
                }

                @Override
                public int logicalBlockBytes() {
                    return buffered.logicalBlockBytes();
                }

                @Override
                public int bufferAlignmentBytes() {
                    return buffered.bufferAlignmentBytes();
                }

                @Override
                public void read(long offsetBytes, MemorySegment dst) throws IOException {
                    int during = inProgress.incrementAndGet();
                    try {
                        synchronized (reads) {
                            reads.add(new Read(
                                    offsetBytes,
                                    dst.byteSize(),
                                    Thread.currentThread().getName(),
                                    during));
                        }
                        if (failAt >= offsetBytes && failAt < offsetBytes + dst.byteSize()) {
                            throw new ErrnoException(
                                    "pread", Errno.EIO.value(), Path.of(name()), offsetBytes, dst.byteSize());
                        }
                        buffered.read(offsetBytes, dst);
                    } finally {
                        inProgress.decrementAndGet();
                    }
                }

                @Override
                public void write(long offsetBytes, MemorySegment src) throws IOException {
                    buffered.write(offsetBytes, src);
                }

                @Override
                public void flush() throws IOException {
                    buffered.flush();
                }

                @Override
                public void discard(long offsetBytes, long lengthBytes) throws IOException {
                    buffered.discard(offsetBytes, lengthBytes);
                }

                @Override
                public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
                    buffered.writeZeroes(offsetBytes, lengthBytes);
                }

                @Override
                public Device buffered() {
                    return this;
                }

                @Override
                public void close() {}
            };
        }

        List<Read> takeReads() {
            synchronized (reads) {
                List<Read> taken = List.copyOf(reads);
                reads.clear();
                return taken;
            }
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public long sizeBytes() {
            return inner.sizeBytes();
        }

        @Override
        public int logicalBlockBytes() {
            return inner.logicalBlockBytes();
        }

        @Override
        public int bufferAlignmentBytes() {
            return inner.bufferAlignmentBytes();
        }

        @Override
        public void read(long offsetBytes, MemorySegment dst) throws IOException {
            inner.read(offsetBytes, dst);
        }

        @Override
        public void write(long offsetBytes, MemorySegment src) throws IOException {
            inner.write(offsetBytes, src);
        }

        @Override
        public void flush() throws IOException {
            inner.flush();
        }

        @Override
        public void discard(long offsetBytes, long lengthBytes) throws IOException {
            inner.discard(offsetBytes, lengthBytes);
        }

        @Override
        public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
            inner.writeZeroes(offsetBytes, lengthBytes);
        }

        @Override
        public Extent extentAt(long offsetBytes, long maxBytes) throws IOException {
            return inner.extentAt(offsetBytes, maxBytes);
        }

        @Override
        public Device buffered() {
            return view;
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }

    /** An origin {@code vol} over the recorded base and a snapshot {@code snap} of it, in {@code mode}. */
    private final class Rig implements AutoCloseable {
        final ChunkCopier copier = new ChunkCopier(2, 1 << 20);
        final byte[] base = NbdFixture.pattern(SECTORS);
        RecordingDevice origin;
        final DeviceManager dm;
        final NbdServer server;

        Rig(CacheMode mode) throws Exception {
            Path basePath = Files.write(dir.resolve(mode + "-base.img"), base);
            Path cowPath = Files.write(dir.resolve(mode + "-cow.img"), new byte[1 << 20]);
            BackingDevices devices = new BackingDevices(real -> {
                if (!real.getFileName().equals(basePath.getFileName())) {
                    return FileDevice.open(real);
                }
                origin = new RecordingDevice(FileDevice.open(real));
                return origin;
            });
            dm = new DeviceManager(
                    SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), devices, mode);
            dm.create("vol", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + basePath));
            dm.get("vol").suspend();
            dm.create(
                    "snap", null, TableParser.parse("0 " + SECTORS + " snapshot " + basePath + " " + cowPath + " P 8"));
            dm.get("vol").resume();
            server = new NbdServer(
                    dm,
                    dir.resolve(mode + ".sock"),
                    null,
                    null,
                    new NbdServer.Settings(Duration.ofMinutes(1), 1024, 16, 64L << 20, new ManualClock()));
        }

        /** A structured client of {@code export} whose first request (always handed on) is done. */
        NbdTestClient queueDepthOne(String export) throws Exception {
            NbdTestClient c = NbdTestClient.open(server.socketPath(), export, true);
            assertArrayEquals(Arrays.copyOf(base, 4096), c.read(0, 4096));
            origin.takeReads();
            return c;
        }

        @Override
        public void close() throws Exception {
            server.close();
            for (var d : dm.list()) {
                dm.remove(d.name(), true);
            }
            copier.close();
        }
    }

    /** The first {@code count} pieces of a read at {@code offset}, read one at a time. */
    private static List<Read> pieces(long offset, int count) {
        List<Read> expected = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            expected.add(new Read(offset + i * NbdConnection.READ_PIECE_BYTES, NbdConnection.READ_PIECE_BYTES, "", 1));
        }
        return expected;
    }

    private static Read whole(long offset) {
        return new Read(offset, LENGTH, "", 1);
    }

    /** The recorded reads, without the thread: the one a piece ran on is checked on its own. */
    private static List<Read> ranges(List<Read> reads) {
        return reads.stream()
                .map(r -> new Read(r.offsetBytes(), r.lengthBytes(), "", r.inProgress()))
                .toList();
    }

    @Test
    void aLargeReadThroughThePageCacheIsOneReadOnTheConnectionsThread() throws Exception {
        int count = (int) (LENGTH / NbdConnection.READ_PIECE_BYTES);
        try (Rig rig = new Rig(CacheMode.WRITEBACK)) {
            for (String export : new String[] {"vol", "snap"}) {
                try (NbdTestClient c = rig.queueDepthOne(export)) {
                    long offset = 2 << 20;
                    c.sendRead(7, offset, LENGTH);
                    NbdTestClient.Reply r = c.reply();
                    assertEquals(0, r.error(), export);
                    assertArrayEquals(
                            Arrays.copyOfRange(rig.base, (int) offset, (int) offset + LENGTH), r.data(), export);
                    assertEquals(count, r.dataChunks(), export + ": a data chunk per piece");
                    List<Read> reads = rig.origin.takeReads();
                    assertEquals(List.of(whole(offset)), ranges(reads), export + ": " + reads);
                    assertTrue(reads.getFirst().thread().startsWith("dmsnap-nbd-conn-"), export + ": " + reads);
                }
            }
        }
    }

    @Test
    void aFailedPieceEndsTheReplyAfterThePiecesBeforeIt() throws Exception {
        try (Rig rig = new Rig(CacheMode.WRITEBACK);
                NbdTestClient c = rig.queueDepthOne("snap")) {
            long offset = 1 << 20;
            rig.origin.failAt = offset + 2 * NbdConnection.READ_PIECE_BYTES + 4096;
            c.sendRead(8, offset, LENGTH);
            NbdTestClient.Reply r = c.reply();
            assertEquals(NbdProtocol.NBD_EIO, r.error());
            assertNull(r.data());
            assertEquals(2, r.dataChunks(), "the two pieces before the failed one");
            assertEquals(3, r.chunks(), "then the error chunk");
            List<Read> expected = new ArrayList<>(List.of(whole(offset)));
            expected.addAll(pieces(offset, 3)); // read again piece by piece, up to the failed one
            assertEquals(expected, ranges(rig.origin.takeReads()));
            rig.origin.failAt = -1;
            assertArrayEquals(Arrays.copyOf(rig.base, 4096), c.read(0, 4096), "the connection goes on");
        }
    }

    @Test
    void withoutThePageCacheTheViewIsNotRead() throws Exception {
        try (Rig rig = new Rig(CacheMode.NONE);
                NbdTestClient c = rig.queueDepthOne("snap")) {
            assertArrayEquals(Arrays.copyOfRange(rig.base, 0, LENGTH), c.read(0, LENGTH));
            assertTrue(rig.origin.takeReads().isEmpty(), "none reads the origin with O_DIRECT");
        }
    }
}
