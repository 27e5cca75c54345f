package dmsnap.store;

import static dmsnap.store.testing.ExceptionStoreContract.tableArgs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.ExceptionStoreContract;
import java.io.IOException;
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
