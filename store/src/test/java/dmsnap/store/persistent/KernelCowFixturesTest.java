package dmsnap.store.persistent;

import static dmsnap.store.testing.ExceptionStoreContract.tableArgs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.StoreFullException;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.KernelFixtures;
import dmsnap.store.testing.KernelFixtures.CowDump;
import dmsnap.store.testing.KernelFixtures.DumpedException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The persistent store against COW images the real kernel wrote (shared/fixtures/kernel-cow). */
class KernelCowFixturesTest {
    private static final int SECTOR = 512;

    private record Loaded(PersistentExceptionStore store, LoadResult result, List<long[]> remaps) {}

    private static Loaded load(MemoryDevice cow, long tableChunk) throws IOException {
        PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(tableChunk), false, SECTOR);
        List<long[]> remaps = new ArrayList<>();
        LoadResult result = store.load((o, n) -> remaps.add(new long[] {o, n}));
        return new Loaded(store, result, remaps);
    }

    @ParameterizedTest(name = "{0}/{1}")
    @CsvSource({"basic, cow.img", "handover, cow.img", "overflow, cow2.img"})
    void loadsExactlyTheRecordedHeaderExceptionsAndUsage(String scenario, String image) throws IOException {
        CowDump dump = KernelFixtures.cowDumps(scenario).stream()
                .filter(d -> d.image().equals(image))
                .findFirst()
                .orElseThrow();
        try (MemoryDevice cow = KernelFixtures.imageDevice(scenario, image)) {
            DiskHeader header = DiskHeader.read(cow.contents());
            assertEquals(
                    dump.header(),
                    String.format(
                            "magic=0x%08x valid=%d version=%d chunk_size=%d",
                            header.magic(), header.valid(), header.version(), header.chunkSectors()));
            // Table chunk 0: the header's chunk size is taken silently.
            Loaded loaded = load(cow, 0);
            assertEquals(LoadResult.VALID, loaded.result());
            List<String> expected = dump.exceptions().stream()
                    .map(e -> e.oldChunk() + "->" + e.newChunk())
                    .toList();
            List<String> actual =
                    loaded.remaps().stream().map(r -> r[0] + "->" + r[1]).toList();
            assertEquals(expected, actual);
            assertEquals(dump.usage(), loaded.store().usage().statusString());
            assertEquals("P 8", tableArgs(loaded.store()));
            loaded.store().close();
        }
    }

    @Test
    void headerChunkSizeOverridesTheTables() throws IOException {
        try (MemoryDevice cow = KernelFixtures.imageDevice("basic", "cow.img")) {
            Loaded loaded = load(cow, 16);
            assertEquals(LoadResult.VALID, loaded.result());
            assertEquals(8, loaded.store().chunkSize().sectors());
            assertEquals(11, loaded.remaps().size());
            loaded.store().close();
        }
    }

    @ParameterizedTest(name = "overflow/{0}")
    @CsvSource({"cow.img", "cow3.img"})
    void invalidatedCowsLoadAsInvalidWithoutReplaying(String image) throws IOException {
        try (MemoryDevice cow = KernelFixtures.imageDevice("overflow", image)) {
            String before = KernelFixtures.sha256(cow.contents());
            Loaded loaded = load(cow, 8);
            assertEquals(LoadResult.INVALID, loaded.result());
            assertEquals(List.of(), loaded.remaps());
            assertFalse(loaded.store().isValid());
            loaded.store().close();
            assertEquals(before, KernelFixtures.sha256(cow.contents()), "loading writes nothing");
        }
    }

    @Test
    void aNewCowGetsTheKernelsHeaderAndAZeroedAreaAtLoad() throws IOException {
        byte[] kernel = KernelFixtures.image("basic", "cow.img");
        try (MemoryDevice cow = new MemoryDevice("cow", 4 << 20)) {
            cow.write(4096, MemorySegment.ofArray(new byte[4096]).fill((byte) 0x77)); // area 0 must be zeroed
            Loaded loaded = load(cow, 8);
            assertEquals(LoadResult.VALID, loaded.result());
            assertEquals("16/8192 16", loaded.store().usage().statusString());
            MemorySegment bytes = cow.contents();
            assertEquals(
                    -1,
                    bytes.asSlice(0, 4096)
                            .mismatch(MemorySegment.ofArray(kernel).asSlice(0, 4096)),
                    "chunk 0 equals the kernel's header chunk");
            assertTrue(
                    KernelFixtures.sha256(bytes.asSlice(4096, 4096)).equals(KernelFixtures.sha256(new byte[4096])),
                    "area 0 is zero");
            loaded.store().close();
        }
    }

    @Test
    void defaultChunkSizeForANewCowIs32Sectors() throws IOException {
        try (MemoryDevice cow = new MemoryDevice("cow", 4 << 20)) {
            Loaded loaded = load(cow, 0);
            assertEquals(32, loaded.store().chunkSize().sectors());
            assertEquals("64/8192 64", loaded.store().usage().statusString());
            loaded.store().close();
        }
    }

    /**
     * Replays a scenario's exception sequence through a fresh store (data chunks copied from the
     * kernel's image) and requires the kernel's image byte for byte.
     *
     * @param failures how many further prepares fail on the full COW; "invalidate" whether the
     *                 snapshot was then invalidated (P, or an origin write on PO) or overflowed (PO)
     */
    private static void replayAndCompare(
            String scenario, String image, int failures, boolean invalidate, boolean overflow) throws IOException {
        byte[] kernel = KernelFixtures.image(scenario, image);
        List<DumpedException> exceptions = KernelFixtures.cowDumps(scenario).stream()
                .filter(d -> d.image().equals(image))
                .findFirst()
                .map(CowDump::exceptions)
                .orElseGet(() -> exceptionsFromImage(kernel));
        try (MemoryDevice cow = new MemoryDevice("cow", kernel.length)) {
            PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(8), overflow, SECTOR);
            assertEquals(LoadResult.VALID, store.load((o, n) -> {}));
            for (DumpedException e : exceptions) {
                PendingRemap remap = store.prepare(e.oldChunk());
                assertEquals(e.newChunk(), remap.newChunk(), "allocation of " + e);
                cow.write(
                        remap.newChunk() * 4096, MemorySegment.ofArray(kernel).asSlice(remap.newChunk() * 4096, 4096));
                AtomicBoolean done = new AtomicBoolean();
                store.commit(remap, true, (r, ok) -> done.set(ok));
                assertTrue(done.get(), "committed and durable when nothing else is outstanding");
            }
            for (int i = 0; i < failures; i++) {
                assertThrows(StoreFullException.class, () -> store.prepare(9999));
            }
            if (invalidate) {
                store.invalidate();
            }
            assertEquals(
                    KernelFixtures.sha256sums(scenario).get(image),
                    KernelFixtures.sha256(cow.contents()),
                    scenario + "/" + image + " byte for byte");
            store.close();
        }
    }

    /** For invalidated images cowdump.txt lists no exceptions: read them from area 0 directly. */
    private static List<DumpedException> exceptionsFromImage(byte[] image) {
        MemorySegment area = MemorySegment.ofArray(image).asSlice(4096, 4096);
        List<DumpedException> list = new ArrayList<>();
        for (int i = 0; i < 256; i++) {
            long newChunk = area.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i * 16L + 8);
            if (newChunk == 0) {
                break;
            }
            list.add(new DumpedException(
                    0, i, area.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i * 16L), newChunk));
        }
        return list;
    }

    @Test
    void basicReplayIsByteIdentical() throws IOException {
        replayAndCompare("basic", "cow.img", 0, false, false);
    }

    @Test
    void handoverReplayIsByteIdentical() throws IOException {
        replayAndCompare("handover", "cow.img", 0, false, false);
    }

    @Test
    void persistentOverflowInvalidatesByteIdentically() throws IOException {
        replayAndCompare("overflow", "cow.img", 1, true, false);
    }

    @Test
    void persistentOverflowWithPoKeepsTheHeaderValid() throws IOException {
        replayAndCompare("overflow", "cow2.img", 6, false, true);
    }

    @Test
    void poOverflowThenOriginWriteInvalidates() throws IOException {
        replayAndCompare("overflow", "cow3.img", 2, true, true);
    }
}
