package dmsnap.store;

import static dmsnap.store.testing.ExceptionStoreContract.tableArgs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.store.device.MemoryDevice;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Table words to stores, with the kernel's reasons (spec 1.3, checklist 3-9). */
class ExceptionStoresTest {
    private final MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
    private final MemoryDevice origin = new MemoryDevice("origin", 1 << 20);
    private final MemoryDevice cow4k = new MemoryDevice("cow4k", 1 << 20, 4096);

    @ParameterizedTest
    @CsvSource({"p, P 8", "P, P 8", "PO, PO 8", "po, PO 8", "Po, PO 8", "POx, PO 8", "n, N 8", "N, N 8", "NX, N 8"})
    void acceptedStoreSpellings(String word, String tableArgs) {
        assertEquals(tableArgs, tableArgs(ExceptionStores.create(word, "8", cow, origin)));
    }

    @ParameterizedTest
    @CsvSource({
        "X, Exception store type is not P or N",
        "PX, Unsupported persistent store option: X",
        "'', Exception store type is not P or N"
    })
    void refusedStoreTypes(String word, String reason) {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> ExceptionStores.create(word, "8", cow, origin));
        assertEquals(reason, e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({
        "abc, Invalid chunk size",
        "-8, Invalid chunk size",
        "4294967296, Invalid chunk size",
        "65, Chunk size is not a power of 2",
        "4194304, Chunk size is too high"
    })
    void refusedChunkSizes(String word, String reason) {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> ExceptionStores.create("P", word, cow, origin));
        assertEquals(reason, e.getMessage());
    }

    @Test
    void chunkSizeLimitsAndBlockSizes() {
        assertEquals("P 2097152", tableArgs(ExceptionStores.create("P", "2097152", cow, origin)));
        assertEquals("P 1", tableArgs(ExceptionStores.create("P", "1", cow, origin)));
        assertEquals("P 8", tableArgs(ExceptionStores.create("P", "+8", cow, origin)));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> ExceptionStores.create("P", "4", cow4k, origin));
        assertEquals("Chunk size is not a multiple of device blocksize", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ExceptionStores.create("P", "4", cow, cow4k));
        assertEquals("P 8", tableArgs(ExceptionStores.create("P", "8", cow4k, origin)));
        assertEquals("P 0", tableArgs(ExceptionStores.create("P", "0", cow, origin)), "0: from the header later");
    }
}
