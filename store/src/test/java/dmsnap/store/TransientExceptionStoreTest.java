package dmsnap.store;

import static dmsnap.store.testing.ExceptionStoreContract.tableArgs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.ExceptionStoreContract;
import dmsnap.store.testing.FaultyDevice;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

class TransientExceptionStoreTest extends ExceptionStoreContract {
    @Override
    protected ExceptionStore newStore(Device cow, long chunkSectors) {
        return new TransientExceptionStore(cow, new ChunkSize(chunkSectors));
    }

    @Override
    protected long firstDataChunk() {
        return 0;
    }

    @Test
    void freshUsageAndFirstCopyAtSectorZero() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 4 << 20);
                TransientExceptionStore store = new TransientExceptionStore(cow, new ChunkSize(8))) {
            assertEquals("0/8192 0", store.usage().statusString());
            assertEquals(0, store.prepare(7).newChunk());
            assertEquals("8/8192 0", store.usage().statusString());
            assertTrue(dmsnap.store.testing.Patterns.isZero(cow.contents()), "nothing but data is ever written");
        }
    }

    @Test
    void aRunWhoseSizeQueryFailsHalfWayReturnsTheRemapsItMade() throws IOException {
        FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", 64 << 10)); // 16 chunks of 4 KiB
        try (TransientExceptionStore store = new TransientExceptionStore(cow, new ChunkSize(8))) {
            List<PendingRemap> before = store.prepare(0, 15);
            assertEquals(15, before.size());
            cow.failNextSizeQuery(); // the second of the run finds the COW full and asks for its size
            List<PendingRemap> run = store.prepare(100, 3);
            assertEquals(List.of(new PendingRemap(100, 15, 15)), run, "the first was made and is the caller's");
            assertThrows(StoreFullException.class, () -> store.prepare(101), "the next prepare meets the full COW");
            List<Long> answered = new ArrayList<>();
            store.commit(run, true, (r, ok) -> answered.add(ok ? r.sequence() : -1));
            store.commit(before, true, (r, ok) -> answered.add(ok ? r.sequence() : -1));
            assertEquals(LongStream.rangeClosed(0, 15).boxed().toList(), answered, "no gap: all 16 in order");
        }
    }

    @Test
    void optionsAreIgnoredAndNoOverflowFlagIsPrinted() {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                MemoryDevice origin = new MemoryDevice("origin", 1 << 20)) {
            ExceptionStore store = ExceptionStores.create("NO", "8", cow, origin);
            assertEquals("N 8", tableArgs(store));
            store.setOverflowSupported(true);
            assertEquals("N 8", tableArgs(store));
        }
    }

    @Test
    void aChunkSizeOfZeroCannotAllocate() {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                TransientExceptionStore store = new TransientExceptionStore(cow, ChunkSize.NOT_SET)) {
            assertThrows(IllegalStateException.class, () -> store.prepare(1));
        }
    }

    @Test
    void mergeIsUnsupported() {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                TransientExceptionStore store = new TransientExceptionStore(cow, new ChunkSize(8))) {
            assertEquals(false, store.supportsMerge());
            assertThrows(UnsupportedOperationException.class, store::prepareMerge);
        }
    }
}
