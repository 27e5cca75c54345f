package dmsnap.store.testing;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

class FaultyDeviceTest extends DeviceContract {
    @Override
    protected Device openDevice(long sizeBytes) {
        return new FaultyDevice(new MemoryDevice("media", sizeBytes));
    }

    @Nested
    class Faults {
        private final Arena arena = Arena.ofAuto();
        private final FaultyDevice device = new FaultyDevice(new MemoryDevice("media", 1 << 20));

        private MemorySegment filled(int bytes, int value) {
            MemorySegment s = arena.allocate(bytes, 4096);
            s.fill((byte) value);
            return s;
        }

        private MemorySegment read(long offset, int bytes) throws IOException {
            MemorySegment s = arena.allocate(bytes, 4096);
            device.read(offset, s);
            return s;
        }

        @Test
        void cachedReadsAreServedOnlyWhereTheTestSaysAndKeepTheirFaults() throws IOException {
            Device view = device.buffered();
            view.write(4096, filled(4096, 9));
            MemorySegment into = arena.allocate(4096);
            assertFalse(view.readIfCached(4096, into), "nothing is cached by default");
            assertFalse(device.readIfCached(4096, into), "the device itself reads around the page cache");
            device.pageCacheHolds(r -> r.offsetBytes() < 65536);
            assertTrue(view.readIfCached(4096, into));
            assertEquals(9, into.get(JAVA_BYTE, 4095));
            assertEquals(Thread.currentThread().getName(), device.lastCachedReadThread());
            assertFalse(view.readIfCached(65536, into), "not cached");
            device.failWhen(r -> r.op() == FaultyDevice.Op.READ && r.offsetBytes() == 4096);
            ErrnoException e = assertThrows(ErrnoException.class, () -> view.readIfCached(4096, into));
            assertEquals(Errno.EIO, e.errno());
            device.heal();
            FaultyDevice.Gate gate = device.hold(r -> r.op() == FaultyDevice.Op.READ && r.offsetBytes() == 8192);
            assertFalse(view.readIfCached(8192, into), "a read the gate would park would wait");
            assertEquals(0, gate.held());
            gate.open();
            assertTrue(view.readIfCached(8192, into));
            assertEquals(6, device.cachedReadTries());
            assertEquals(3, device.cachedReadsServed());
        }

        @Test
        void crashLosesEverythingSinceTheLastFlush() throws IOException {
            device.write(0, filled(4096, 1));
            device.flush();
            device.write(0, filled(4096, 2));
            device.write(8192, filled(4096, 3));
            assertEquals(2, read(0, 4096).get(JAVA_BYTE, 0));
            assertEquals(2, device.unflushedWrites());
            device.crash();
            assertEquals(1, read(0, 4096).get(JAVA_BYTE, 0));
            assertTrue(Patterns.isZero(read(8192, 4096)));
        }

        @Test
        void randomCrashIsReproducibleFromTheSeed() throws IOException {
            MemorySegment[] outcomes = new MemorySegment[2];
            for (int run = 0; run < 2; run++) {
                FaultyDevice d = new FaultyDevice(new MemoryDevice("media", 1 << 20));
                for (int i = 0; i < 32; i++) {
                    d.write(i * 8192L, filled(8192, i + 1));
                }
                d.crash(new Random(Seeds.seed()));
                outcomes[run] = arena.allocate(1 << 20);
                d.read(0, outcomes[run]);
            }
            assertNull(Patterns.difference(outcomes[0], outcomes[1]));
        }

        @Test
        void pageCacheWritesAreReadOnBothPathsAndLostAtAPowerCutUnlessTheFileWasFlushed() throws IOException {
            Device pages = device.buffered();
            assertSame(pages, device.buffered(), "one view per device");
            assertSame(pages, pages.buffered());
            pages.write(0, filled(4096, 1));
            assertEquals(1, read(0, 4096).get(JAVA_BYTE, 0), "a direct read sees the page cache");
            assertEquals(1, device.dirtyPageCacheWrites());
            device.flush(); // fdatasync of the file writes its dirty pages back
            pages.write(0, filled(4096, 2));
            pages.write(8192, filled(4096, 3));
            MemorySegment back = arena.allocate(4096);
            pages.read(8192, back);
            assertEquals(3, back.get(JAVA_BYTE, 0));
            device.crash();
            assertEquals(1, read(0, 4096).get(JAVA_BYTE, 0), "flushed");
            assertTrue(Patterns.isZero(read(8192, 4096)), "lost with the page cache");
        }

        @Test
        void directIoWritesBackTheDirtyPagesItCoversSoTheLaterWriteWins() throws IOException {
            Device pages = device.buffered();
            pages.write(0, filled(8192, 1));
            device.write(4096, filled(4096, 2)); // the pages of [0, 8192) go to the device's cache first
            assertEquals(0, device.dirtyPageCacheWrites());
            assertEquals(2, read(4096, 512).get(JAVA_BYTE, 0));
            pages.write(16384, filled(4096, 4));
            device.writeZeroes(16384, 4096);
            assertTrue(Patterns.isZero(read(16384, 4096)), "zeroes after the page they cover");
            device.flush();
            device.crash();
            assertEquals(1, read(0, 512).get(JAVA_BYTE, 0));
            assertEquals(2, read(4096, 512).get(JAVA_BYTE, 0));
            assertTrue(Patterns.isZero(read(16384, 4096)));
        }

        @Test
        void aPowerCutKeepsAnySubsetOfDirtyPagesAtPageGranularity() throws IOException {
            Random seeds = new Random(Seeds.seed());
            boolean someKept = false;
            boolean someLost = false;
            for (int run = 0; run < 16; run++) {
                FaultyDevice d = new FaultyDevice(new MemoryDevice("media", 1 << 20));
                d.buffered().write(0, filled(16 * 4096, 5));
                d.crash(new Random(seeds.nextLong()));
                MemorySegment all = arena.allocate(16 * 4096);
                d.read(0, all);
                for (int sector = 0; sector < 16 * 8; sector++) {
                    byte b = all.get(JAVA_BYTE, sector * 512L);
                    assertTrue(b == 0 || b == 5);
                    assertEquals(b, all.get(JAVA_BYTE, sector * 512L + 511), "whole sectors");
                    someKept |= b == 5;
                    someLost |= b == 0;
                }
            }
            assertTrue(someKept && someLost, "a subset of the pages");
        }

        @Test
        void mapsLikeFilesMakeASyncDurableWithoutWritingBackOtherDirtyPages() throws IOException {
            device.mapsLikeFiles();
            device.buffered().write(8192, filled(4096, 6));
            try (var map = device.mapMetadata(0, 4096)) {
                assertTrue(map.syncIsDurable());
                assertTrue(map.flushWritesBack());
                map.segment().fill((byte) 7);
                map.sync(0, 4096);
                assertEquals(1, device.flushes(), "msync(MS_SYNC) flushes the device cache");
                device.crash();
                assertEquals(7, read(0, 512).get(JAVA_BYTE, 0), "the synced range is durable");
                assertTrue(Patterns.isZero(read(8192, 4096)), "the file's other dirty pages are not");
                map.segment().fill((byte) 8);
                device.flush(); // writes back the map's unsynced stores, as fdatasync of the file
                device.crash();
                assertEquals(8, read(0, 512).get(JAVA_BYTE, 0));
            }
        }

        @Test
        void aClosedMapLeavesItsUnsyncedStoresAsDirtyPagesThatAFlushKeepsAndACrashLoses() throws IOException {
            try (var map = device.mapMetadata(0, 4096)) {
                map.segment().asSlice(0, 512).fill((byte) 1);
                map.sync(0, 512);
                device.flush();
                map.segment().asSlice(512, 512).fill((byte) 2); // never synced: munmap keeps it dirty
            }
            assertEquals(1, device.dirtyPageCacheWrites(), "one run of unsynced sectors");
            try (var again = device.mapMetadata(0, 4096)) {
                assertEquals(2, again.segment().get(JAVA_BYTE, 512), "the next map reads the dirty page");
            }
            assertEquals(2, read(512, 512).get(JAVA_BYTE, 0), "and so does a read");
            device.crash();
            assertEquals(1, read(0, 512).get(JAVA_BYTE, 0), "the synced store is durable");
            assertTrue(Patterns.isZero(read(512, 512)), "the unsynced one went with the power");

            try (var map = device.mapMetadata(0, 4096)) {
                map.segment().asSlice(512, 512).fill((byte) 3);
            }
            device.flush(); // fdatasync of the file writes the dirty pages back
            device.crash();
            assertEquals(3, read(512, 512).get(JAVA_BYTE, 0), "flushed after the map was closed");
        }

        @Test
        void failNthFailsExactlyThatOperationWithEio() throws IOException {
            device.failNth(FaultyDevice.Op.WRITE, 2);
            device.write(0, filled(512, 1));
            ErrnoException e = assertThrows(ErrnoException.class, () -> device.write(512, filled(512, 2)));
            assertEquals(Errno.EIO, e.errno());
            assertTrue(
                    e.getMessage().contains("pwrite(path=faulty(media), offset=512, length=512) failed: EIO"),
                    e.getMessage());
            device.write(1024, filled(512, 3));
            assertTrue(Patterns.isZero(read(512, 512)), "the failed write stored nothing");
        }

        @Test
        void failAfterFailsEveryLaterOperation() throws IOException {
            device.failAfter(2);
            device.write(0, filled(512, 1));
            read(0, 512);
            assertThrows(ErrnoException.class, device::flush);
            assertThrows(ErrnoException.class, () -> read(0, 512));
            device.heal();
            device.flush();
        }

        @Test
        void tornWriteKeepsAPrefixOfSectors() throws IOException {
            device.tearNextWrite(3);
            assertThrows(ErrnoException.class, () -> device.write(0, filled(4096, 7)));
            MemorySegment back = read(0, 4096);
            assertEquals(7, back.get(JAVA_BYTE, 3 * 512 - 1));
            assertTrue(Patterns.isZero(back.asSlice(3 * 512)));
        }

        @Test
        void droppedAndCorruptedWritesReportSuccess() throws IOException {
            device.dropNextWrite();
            device.write(0, filled(512, 9));
            assertTrue(Patterns.isZero(read(0, 512)));
            device.corruptNextWrite(new Random(1));
            MemorySegment data = filled(512, 9);
            device.write(0, data);
            assertNotNull(Patterns.difference(data, read(0, 512)));
        }

        @Test
        void predicateFaultsTargetRanges() throws IOException {
            device.failWhen(r -> r.op() == FaultyDevice.Op.READ && r.offsetBytes() >= 65536);
            read(0, 512);
            assertThrows(ErrnoException.class, () -> read(65536, 512));
        }

        @Test
        void aGateParksMatchingRequestsUntilReleasedAndHoldsNoLock() throws Exception {
            device.write(8192, filled(512, 4));
            FaultyDevice.Gate gate = device.hold(r -> r.op() == FaultyDevice.Op.READ && r.offsetBytes() == 8192);
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(2);
            try {
                var first = pool.submit(() -> read(8192, 512).get(JAVA_BYTE, 0));
                gate.awaitParked(1);
                assertEquals(false, first.isDone(), "parked at the gate");
                device.write(0, filled(512, 5)); // the device is not locked meanwhile
                assertEquals(5, read(0, 512).get(JAVA_BYTE, 0), "a request the gate does not hold goes on");
                gate.releaseParked();
                assertEquals(
                        4, first.get(60, java.util.concurrent.TimeUnit.SECONDS).byteValue());
                var second = pool.submit(() -> read(8192, 512).get(JAVA_BYTE, 0));
                gate.awaitParked(1);
                assertEquals(false, second.isDone(), "held again after a release");
                gate.open();
                assertEquals(
                        4, second.get(60, java.util.concurrent.TimeUnit.SECONDS).byteValue());
                assertEquals(4, read(8192, 512).get(JAVA_BYTE, 0), "an open gate holds nothing");
                assertEquals(0, gate.parked());
                assertEquals(2, gate.held());
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
