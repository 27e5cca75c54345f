package dmsnap.store.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.CommitCallback;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreFullException;
import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** What every {@link ExceptionStore} does; a subclass supplies the store over a COW device. */
@ExtendWith(Seeds.class)
public abstract class ExceptionStoreContract {

    /** A store of chunk size {@code chunkSectors} over {@code cow}, not yet loaded. */
    protected abstract ExceptionStore newStore(Device cow, long chunkSectors);

    /** Chunks a fresh store of this kind uses for metadata before the first data chunk. */
    protected abstract long firstDataChunk();

    private ExceptionStore loadedStore(Device cow, long chunk) throws IOException {
        ExceptionStore store = newStore(cow, chunk);
        assertEquals(LoadResult.VALID, store.load((o, n) -> {}));
        return store;
    }

    @Test
    void allocatesDistinctDataChunksInOrder() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            Set<Long> seen = new HashSet<>();
            long previous = -1;
            for (int i = 0; i < 100; i++) {
                PendingRemap r = store.prepare(i * 3L);
                assertEquals(i * 3L, r.oldChunk());
                assertTrue(r.newChunk() >= firstDataChunk() && r.newChunk() > previous, "ascending: " + r);
                assertTrue(seen.add(r.newChunk()));
                assertEquals(i, r.sequence());
                previous = r.newChunk();
            }
        }
    }

    @Test
    void callbacksRunInAllocationOrderWhateverTheCommitOrder() throws IOException {
        Random random = Seeds.random("commit-order");
        try (MemoryDevice cow = new MemoryDevice("cow", 4 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            List<PendingRemap> prepared = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                prepared.add(store.prepare(i));
            }
            List<PendingRemap> order = new ArrayList<>(prepared);
            Collections.shuffle(order, random);
            List<Long> called = new CopyOnWriteArrayList<>();
            for (PendingRemap r : order) {
                store.commit(r, true, (remap, ok) -> {
                    assertTrue(ok);
                    called.add(remap.sequence());
                });
            }
            List<Long> expected = prepared.stream().map(PendingRemap::sequence).toList();
            assertEquals(expected, called);
        }
    }

    @Test
    void aFailedCopyInvalidatesTheStore() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            PendingRemap a = store.prepare(1);
            boolean[] result = {true, true};
            store.commit(a, false, (r, ok) -> result[0] = ok);
            assertFalse(result[0]);
            assertFalse(store.isValid());
            PendingRemap b = store.prepare(2);
            store.commit(b, true, (r, ok) -> result[1] = ok);
            assertFalse(result[1], "an invalid store never acknowledges again");
        }
    }

    @Test
    void aFullCowRefusesToAllocate() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 64 << 10);
                ExceptionStore store = loadedStore(cow, 8)) {
            int allocated = 0;
            while (true) {
                try {
                    store.prepare(allocated);
                    allocated++;
                } catch (StoreFullException e) {
                    break;
                }
            }
            assertEquals(16 - firstDataChunk(), allocated, "every data chunk of a 16-chunk COW");
            assertThrows(StoreFullException.class, () -> store.prepare(999));
            assertTrue(store.isValid(), "running out of room alone does not invalidate");
        }
    }

    @Test
    void aRunAllocatesAsManyChunksAsFitInOrder() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 64 << 10);
                ExceptionStore store = loadedStore(cow, 8)) {
            List<PendingRemap> first = store.prepare(100, 5);
            assertEquals(5, first.size());
            List<PendingRemap> rest = store.prepare(200, 100);
            assertEquals(16 - firstDataChunk() - 5, rest.size(), "the rest of a 16-chunk COW");
            List<PendingRemap> all = new ArrayList<>(first);
            all.addAll(rest);
            for (int i = 0; i < all.size(); i++) {
                PendingRemap r = all.get(i);
                assertEquals(i < 5 ? 100 + i : 200 + i - 5, r.oldChunk());
                assertEquals(i, r.sequence());
                assertEquals(firstDataChunk() + i, r.newChunk());
            }
            assertThrows(StoreFullException.class, () -> store.prepare(300, 3));
            assertTrue(store.isValid(), "running out of room alone does not invalidate");
        }
    }

    @Test
    void runsCommittedInAnyOrderAreAnsweredInAllocationOrderOnce() throws IOException, InterruptedException {
        Random random = Seeds.random("commit-runs");
        try (MemoryDevice cow = new MemoryDevice("cow", 4 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            List<List<PendingRemap>> runs = new ArrayList<>();
            int total = 0;
            while (total < 300) {
                List<PendingRemap> run = store.prepare(1000L * runs.size(), 1 + random.nextInt(40));
                runs.add(run);
                total += run.size();
            }
            List<List<PendingRemap>> order = new ArrayList<>(runs);
            Collections.shuffle(order, random);
            List<Long> called = new CopyOnWriteArrayList<>();
            for (List<PendingRemap> run : order) {
                CommitCallback answer = (remap, ok) -> {
                    assertTrue(ok);
                    called.add(remap.sequence());
                };
                if (random.nextBoolean()) {
                    store.commitDeferred(run, true, answer);
                } else {
                    store.commit(run, true, answer);
                }
            }
            store.sync(false);
            List<Long> expected = runs.stream()
                    .flatMap(List::stream)
                    .map(PendingRemap::sequence)
                    .toList();
            assertEquals(expected, called);
            assertEquals(total, expected.size());
        }
    }

    @Test
    void usageCountsAllocatedAndTotalSectors() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            long before = store.usage().allocatedSectors();
            store.prepare(5);
            assertEquals(before + 8, store.usage().allocatedSectors());
            assertEquals(2048, store.usage().totalSectors());
        }
    }

    @Test
    void invalidateIsIdempotent() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ExceptionStore store = loadedStore(cow, 8)) {
            store.invalidate();
            store.invalidate();
            assertFalse(store.isValid());
        }
    }

    @Test
    void tableArgsNameTypeAndChunk() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 1 << 20);
                ExceptionStore store = loadedStore(cow, 16)) {
            assertEquals(store.typeLetter() + " 16", tableArgs(store));
        }
    }

    /** {@code P 8}, {@code PO 16}, {@code N 8}: the store part of a snapshot's table line, as the engine prints it. */
    public static String tableArgs(ExceptionStore store) {
        return store.typeArgument() + " " + store.chunkSize().sectors();
    }
}
