package dmsnap.store.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.store.device.Device;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * What every {@link Device} must do. A subclass supplies {@link #openDevice}: a fresh,
 * zero-filled, writable device of exactly the requested size.
 */
@ExtendWith(Seeds.class)
public abstract class DeviceContract {
    protected static final long DEVICE_BYTES = 8L << 20;

    private Arena arena;
    private Device device;

    /** A fresh zero-filled writable device of {@code sizeBytes}. */
    protected abstract Device openDevice(long sizeBytes) throws IOException;

    @BeforeEach
    void openIt() throws IOException {
        arena = Arena.ofConfined();
        device = openDevice(DEVICE_BYTES);
    }

    @AfterEach
    void closeIt() throws IOException {
        device.close();
        arena.close();
    }

    protected Device device() {
        return device;
    }

    private MemorySegment buffer(long bytes) {
        return arena.allocate(bytes, Math.max(8, Math.max(device.bufferAlignmentBytes(), 4096)));
    }

    private MemorySegment randomBuffer(long bytes, Random random) {
        MemorySegment b = buffer(bytes);
        Patterns.fill(b, random);
        return b;
    }

    @Test
    void geometryIsConsistent() {
        int logical = device.logicalBlockBytes();
        assertEquals(DEVICE_BYTES, device.sizeBytes());
        assertEquals(DEVICE_BYTES / 512, device.sizeSectors());
        assertTrue(logical >= 512 && Integer.bitCount(logical) == 1, "logical block " + logical);
        assertTrue(Integer.bitCount(device.bufferAlignmentBytes()) == 1, "alignment is a power of two");
        assertEquals(0, device.sizeBytes() % logical);
    }

    @Test
    void freshDeviceReadsZeroes() throws IOException {
        MemorySegment b = buffer(1 << 20);
        device.read(3L << 20, b);
        assertTrue(Patterns.isZero(b));
    }

    @Test
    void writesReadBackAtBlockOffsets() throws IOException {
        Random random = Seeds.random("writesReadBackAtBlockOffsets");
        int block = device.logicalBlockBytes();
        long[] offsets = {0, block, 1L << 20, DEVICE_BYTES - block, DEVICE_BYTES / 2 + 3L * block};
        List<MemorySegment> written = new ArrayList<>();
        for (long offset : offsets) {
            MemorySegment data = randomBuffer(block, random);
            device.write(offset, data);
            written.add(data);
        }
        for (int i = 0; i < offsets.length; i++) {
            MemorySegment back = buffer(block);
            device.read(offsets[i], back);
            assertNull(Patterns.difference(written.get(i), back), "at offset " + offsets[i]);
        }
    }

    @Test
    void largeSequentialWriteReadsBackAcrossBlocks() throws IOException {
        Random random = Seeds.random("largeSequential");
        MemorySegment data = randomBuffer(1 << 20, random);
        device.write(2L << 20, data);
        device.flush();
        MemorySegment back = buffer(1 << 20);
        device.read(2L << 20, back);
        assertNull(Patterns.difference(data, back));
        // A read straddling the end of the written range sees data then zeroes.
        int block = device.logicalBlockBytes();
        MemorySegment straddle = buffer(2L * block);
        device.read((3L << 20) - block, straddle);
        assertNull(Patterns.difference(data.asSlice((1 << 20) - block, block), straddle.asSlice(0, block)));
        assertTrue(Patterns.isZero(straddle.asSlice(block, block)));
    }

    @Test
    void allocatingChangesNoByteNorTheSize() throws IOException {
        Random random = Seeds.random("allocate");
        MemorySegment data = randomBuffer(1 << 20, random);
        device.write(1L << 20, data);
        try {
            device.allocate(0, DEVICE_BYTES); // the written range, holes before and after it
            device.allocate(DEVICE_BYTES / 2, DEVICE_BYTES / 2);
        } catch (dmsnap.ffm.ErrnoException e) {
            assumeTrue(e.errno() != dmsnap.ffm.Errno.EOPNOTSUPP, "no fallocate here");
            throw e;
        }
        assertEquals(DEVICE_BYTES, device.sizeBytes());
        assertEquals(DEVICE_BYTES, device.refreshSize());
        MemorySegment back = buffer(3 << 20);
        device.read(0, back);
        assertTrue(Patterns.isZero(back.asSlice(0, 1 << 20)));
        assertNull(Patterns.difference(data, back.asSlice(1 << 20, 1 << 20)));
        assertTrue(Patterns.isZero(back.asSlice(2 << 20, 1 << 20)));
        assertThrows(IllegalArgumentException.class, () -> device.allocate(DEVICE_BYTES, 4096));
    }

    @Test
    void overwriteReplacesOnlyItsRange() throws IOException {
        Random random = Seeds.random("overwrite");
        int block = device.logicalBlockBytes();
        MemorySegment first = randomBuffer(4L * block, random);
        device.write(0, first);
        MemorySegment second = randomBuffer(block, random);
        device.write(block, second);
        MemorySegment back = buffer(4L * block);
        device.read(0, back);
        assertNull(Patterns.difference(first.asSlice(0, block), back.asSlice(0, block)));
        assertNull(Patterns.difference(second, back.asSlice(block, block)));
        assertNull(Patterns.difference(first.asSlice(2L * block, 2L * block), back.asSlice(2L * block, 2L * block)));
    }

    @Test
    void readPastTheEndIsRefusedBeforeIo() {
        int block = device.logicalBlockBytes();
        MemorySegment b = buffer(2L * block);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> device.read(DEVICE_BYTES - block, b));
        assertTrue(e.getMessage().contains("outside the device (size " + DEVICE_BYTES + " bytes)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> device.write(DEVICE_BYTES, buffer(block)));
        assertThrows(IllegalArgumentException.class, () -> device.read(-block, buffer(block)));
    }

    @Test
    void misalignedOffsetAndLengthAreRefusedNamingTheBlockSize() {
        int block = device.logicalBlockBytes();
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> device.read(100, buffer(block)));
        assertTrue(e.getMessage().contains("logical block size (" + block + " bytes)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> device.write(0, buffer(block + 100)));
    }

    @Test
    void misalignedBufferIsRefusedNamingTheAlignment() {
        int align = device.bufferAlignmentBytes();
        assumeTrue(align > 1, "this device takes any buffer address");
        int block = device.logicalBlockBytes();
        MemorySegment shifted = buffer(2L * block).asSlice(8, block);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.write(0, shifted));
        assertTrue(e.getMessage().contains("aligned to " + align + " bytes"), e.getMessage());
    }

    @Test
    void writeZeroesZeroesExactlyItsRange() throws IOException {
        Random random = Seeds.random("writeZeroes");
        MemorySegment data = randomBuffer(256 << 10, random);
        device.write(1L << 20, data);
        device.writeZeroes((1L << 20) + (64 << 10), 64 << 10);
        MemorySegment back = buffer(256 << 10);
        device.read(1L << 20, back);
        assertNull(Patterns.difference(data.asSlice(0, 64 << 10), back.asSlice(0, 64 << 10)));
        assertTrue(Patterns.isZero(back.asSlice(64 << 10, 64 << 10)));
        assertNull(Patterns.difference(data.asSlice(128 << 10, 128 << 10), back.asSlice(128 << 10, 128 << 10)));
    }

    @Test
    void discardLeavesOtherDataAlone() throws IOException {
        Random random = Seeds.random("discard");
        MemorySegment data = randomBuffer(256 << 10, random);
        device.write(0, data);
        device.flush();
        device.discard(64 << 10, 64 << 10);
        MemorySegment back = buffer(256 << 10);
        device.read(0, back);
        assertNull(Patterns.difference(data.asSlice(0, 64 << 10), back.asSlice(0, 64 << 10)));
        MemorySegment discarded = back.asSlice(64 << 10, 64 << 10);
        assertTrue(
                Patterns.isZero(discarded) || Patterns.difference(data.asSlice(64 << 10, 64 << 10), discarded) == null,
                "a discarded range reads as zeroes or as its old data");
        assertNull(Patterns.difference(data.asSlice(128 << 10, 128 << 10), back.asSlice(128 << 10, 128 << 10)));
    }

    @Test
    void flushKeepsData() throws IOException {
        Random random = Seeds.random("flush");
        MemorySegment data = randomBuffer(64 << 10, random);
        device.write(512 << 10, data);
        device.flush();
        device.flush();
        MemorySegment back = buffer(64 << 10);
        device.read(512 << 10, back);
        assertNull(Patterns.difference(data, back));
    }

    @Test
    void concurrentWritesToDisjointRangesAllLand() throws Exception {
        int threads = 4;
        int perThread = 64;
        int block = Math.max(device.logicalBlockBytes(), 4096);
        long stripe = DEVICE_BYTES / threads;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                futures.add(pool.submit(() -> {
                    Random random = Seeds.random("concurrent-" + thread);
                    try (Arena local = Arena.ofConfined()) {
                        MemorySegment data = local.allocate(block, Math.max(4096, device.bufferAlignmentBytes()));
                        MemorySegment back = local.allocate(block, Math.max(4096, device.bufferAlignmentBytes()));
                        for (int i = 0; i < perThread; i++) {
                            long offset = thread * stripe + (long) random.nextInt((int) (stripe / block)) * block;
                            Patterns.fill(data, random);
                            device.write(offset, data);
                            device.read(offset, back);
                            String diff = Patterns.difference(data, back);
                            if (diff != null) {
                                throw new AssertionError("thread " + thread + " offset " + offset + ": " + diff);
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void closeIsIdempotentAndLaterUseFails() throws IOException {
        MemorySegment b = buffer(device.logicalBlockBytes());
        device.close();
        device.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> device.read(0, b));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
}
