package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.MappedDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.target.CacheMode;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads that must not wait ({@link MappedDevice#readIfCached}, the kernel's {@code REQ_NOWAIT})
 * of a {@code writeback} snapshot and its origin: served from the page cache the test says holds
 * the data, with the normal read's answer; "would wait" wherever the normal read could wait (a
 * copy in flight, a suspended device, an invalid snapshot, data not cached), never a wrong answer.
 */
class NowaitReadTest {
    @TempDir
    Path dir;

    /** 64 chunks of 4 KiB (chunk 8), everything cached unless a test says otherwise. */
    private CacheRig rig() throws Exception {
        CacheRig r = new CacheRig(dir, 512, 1 << 20, 8, CacheMode.WRITEBACK);
        r.base.pageCacheHolds(request -> true);
        r.cow.pageCacheHolds(request -> true);
        return r;
    }

    /** The tags of {@code count} sectors from {@code sector} read without waiting; null: it would wait. */
    private static long[] nowaitRead(CacheRig r, String device, long sector, int count) throws Exception {
        MemorySegment data = r.arena.allocate(count * CacheRig.SECTOR, 4096);
        if (!r.device(device).readIfCached(IoRequest.read(sector, data))) {
            return null;
        }
        long[] tags = new long[count];
        for (int i = 0; i < count; i++) {
            tags[i] = CacheRig.tagOf(data.asSlice((long) i * CacheRig.SECTOR, CacheRig.SECTOR), sector + i, device);
        }
        return tags;
    }

    @Test
    void aCachedReadReadsYourWritesThroughAnExceptionNotYetCommitted() throws Exception {
        try (CacheRig r = rig()) {
            r.write("snap", 16, 8, 1, false); // chunk 2, whole
            r.write("snap", 41, 2, 2, false); // chunk 5, partial: copied from the origin first
            assertEquals(Map.of(), r.durableRemaps(), "nothing committed yet");
            long before = r.cow.cachedReadsServed();
            // Chunks 1 to 5 in one read: origin, the new exception, origin, origin, the partial one.
            long[] tags = nowaitRead(r, "snap", 8, 40);
            for (int i = 0; i < 40; i++) {
                long s = 8 + i;
                long expected = s >= 16 && s < 24 ? 1 : s == 41 || s == 42 ? 2 : 0;
                assertEquals(expected, tags[i], "sector " + s);
            }
            assertEquals(before + 2, r.cow.cachedReadsServed(), "chunks 2 and 5 from the COW's page cache");
            assertEquals(1, r.device("snap").ioStats().totals().cachedReads());
            assertEquals(0, nowaitRead(r, "origin", 16, 8)[0], "the origin is untouched");
        }
    }

    @Test
    void aReadOfDataNotCachedWouldWaitAndTheNormalReadThenServesIt() throws Exception {
        try (CacheRig r = rig()) {
            r.write("snap", 16, 8, 3, false);
            r.cow.pageCacheHolds(null);
            long reads = r.device("snap").ioStats().totals().reads();
            assertEquals(null, nowaitRead(r, "snap", 16, 8), "the COW's page cache holds nothing");
            assertEquals(reads, r.device("snap").ioStats().totals().reads(), "a read that would wait is not counted");
            assertEquals(3, r.read("snap")[16]);
            r.base.pageCacheHolds(request -> request.offsetBytes() >= 4096 * 8);
            assertEquals(null, nowaitRead(r, "snap", 0, 8), "origin chunk 0 is not cached");
            assertEquals(0, nowaitRead(r, "snap", 64, 8)[0], "origin chunk 8 is");
            assertEquals(null, nowaitRead(r, "snap", 56, 16), "a read is served whole or not at all");
        }
    }

    @Test
    void aChunkWhoseCopyOutIsInFlightWouldWaitUntilItsExceptionIsVisible() throws Exception {
        try (CacheRig r = rig()) {
            // The copy-out's write into the COW's data area (the header and first metadata area are
            // chunks 0 and 1) parks: the exception of chunk 4 is being made.
            FaultyDevice.Gate gate =
                    r.cow.hold(request -> request.op() == FaultyDevice.Op.WRITE && request.offsetBytes() >= 2 * 4096);
            CompletableFuture<Void> originWrite = CompletableFuture.runAsync(() -> {
                try {
                    r.write("origin", 32, 8, 5, false);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            gate.awaitParked(1);
            long baseTries = r.base.cachedReadTries();
            assertEquals(null, nowaitRead(r, "snap", 32, 8), "its copy is in flight");
            assertEquals(baseTries, r.base.cachedReadTries(), "decided before any device was asked");
            assertEquals(0, r.read("snap")[32], "the normal read goes to the origin, which waits for it");
            assertEquals(0, nowaitRead(r, "snap", 40, 8)[0], "another chunk is served meanwhile");
            gate.open();
            originWrite.get(60, TimeUnit.SECONDS);
            assertEquals(0, nowaitRead(r, "snap", 32, 8)[7], "now from the COW");
            assertEquals(5, nowaitRead(r, "origin", 32, 8)[0], "and the origin has the new data");
        }
    }

    @Test
    void aSuspendedOrInvalidSnapshotWouldWaitAndTheNormalReadAnswers() throws Exception {
        try (CacheRig r = rig()) {
            MappedDevice snap = r.device("snap");
            snap.suspend();
            assertEquals(null, nowaitRead(r, "snap", 0, 8), "suspended");
            snap.resume();
            assertEquals(0, nowaitRead(r, "snap", 0, 8)[0]);
            r.fail("base.img", request -> request.op() == FaultyDevice.Op.READ);
            r.write("origin", 0, 8, 6, false); // its copy-out cannot read the origin: invalid
            r.fail("base.img", null);
            assertEquals(null, nowaitRead(r, "snap", 0, 8), "invalid: the normal read says so");
            IOException e = assertThrows(IOException.class, () -> r.read("snap"));
            assertTrue(e.getMessage().contains("invalid"), e.getMessage());
        }
    }

    @Test
    void anInjectedReadErrorFailsACachedReadAsItWouldFailANormalOne() throws Exception {
        try (CacheRig r = rig()) {
            r.write("snap", 16, 8, 1, false);
            r.fail("cow.img", request -> request.op() == FaultyDevice.Op.READ);
            long errors = r.device("snap").ioStats().totals().errors();
            long served = r.cow.cachedReadsServed();
            assertThrows(IOException.class, () -> nowaitRead(r, "snap", 16, 8));
            assertEquals(served + 1, r.cow.cachedReadsServed(), "the page cache served it, and the fault applied");
            assertEquals(errors + 1, r.device("snap").ioStats().totals().errors());
            r.fail("cow.img", null);
            assertEquals(1, nowaitRead(r, "snap", 16, 8)[0]);
            assertFalse(r.durablyInvalid(), "a failed read invalidates nothing");
        }
    }
}
