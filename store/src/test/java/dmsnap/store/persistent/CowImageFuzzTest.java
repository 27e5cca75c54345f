package dmsnap.store.persistent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.ExceptionTable;
import dmsnap.store.PendingRemap;
import dmsnap.store.RemapSink;
import dmsnap.store.StoreFullException;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.CowMutator;
import dmsnap.store.testing.CowMutator.CowImage;
import dmsnap.store.testing.CowMutator.Mutant;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile COW images ({@link CowMutator}: every kernel fixture image and images the store wrote,
 * mutated) through the persistent store's load as a table load does it (over a {@link FileDevice},
 * into an {@link ExceptionTable}'s loading sink) and through {@link CowInspector}, the core of
 * {@code cow check|dump|read}. Seeded ({@code -Ddmsnap.tests.seed}), bounded in count
 * ({@code dmsnap.tests.cowFuzzCases}) and time ({@code dmsnap.tests.cowFuzzMillis}), both scaled by
 * {@code dmsnap.tests.fuzzScale}.
 *
 * <p>Per case: the inspector reads without writing; the load either succeeds consistently (every
 * new chunk a data chunk inside the COW and used once, every old chunk once; exactly what the
 * inspector lists, which then finds nothing worse than stale entries after the terminator; the
 * next allocation is a free data chunk and survives a reload) or fails with an {@link IOException}
 * of one line, after which the file is unchanged, and then the inspector names that problem too,
 * in the load's words.
 * No other exception may escape either of them.
 */
@ExtendWith(Seeds.class)
class CowImageFuzzTest {
    static final FuzzBudget BUDGET = FuzzBudget.of("cowFuzz", 3000, 12_000);

    @TempDir
    Path dir;

    private volatile String current = "before the first case";
    private final TreeMap<String, Integer> outcomes = new TreeMap<>();

    @Test
    void mutatedCowsLoadConsistentlyOrAreRefusedInOneLine() {
        assertTimeoutPreemptively(BUDGET.hangGuard(), this::run, () -> "hung in " + current);
    }

    private void run() throws IOException {
        Random master = Seeds.random("cow-image-fuzz");
        List<CowImage> seeds = CowMutator.seeds(master);
        Path file = dir.resolve("cow.img");
        FuzzBudget.Clock clock = BUDGET.start();
        int cases = 0;
        for (; clock.more(cases); cases++) {
            long caseSeed = master.nextLong();
            Random r = new Random(caseSeed);
            Mutant m = CowMutator.mutate(seeds.get(r.nextInt(seeds.size())), r);
            String what = "case " + cases + " (case seed " + caseSeed + "): " + m.describe();
            current = what;
            Files.write(file, m.bytes());
            CowInspector.Report report = inspect(file, m.bytes(), what);
            loadAsTable(file, m.bytes(), report, r, what);
        }
        System.out.printf(
                "COW image fuzz: seed %d: %d cases in %d ms over %d seeds; store load and inspector: %s;"
                        + " reproduce with -Ddmsnap.tests.seed=%d%n",
                Seeds.seed(), cases, clock.elapsedMillis(), seeds.size(), outcomes, Seeds.seed());
        Figures.record(
                "fuzz.cow-image.cases",
                cases + " mutated COWs (" + seeds.size() + " seeds): " + outcomes.getOrDefault("load refused", 0)
                        + " refused in one line, 0 escaped, 0 writes to the input");
        if (cases >= FuzzBudget.MIN_CASES) {
            assertTrue(
                    outcomes.getOrDefault("load VALID", 0) > 0 && outcomes.getOrDefault("load refused", 0) > 0,
                    "the mutants should both load and be refused: " + outcomes);
        }
    }

    private void count(String outcome) {
        outcomes.merge(outcome, 1, Integer::sum);
    }

    /** An error a user sees: an IOException with a message of one non-empty line. */
    static void assertOneLine(Throwable e, String what) {
        if (!(e instanceof IOException)) {
            throw new AssertionError(what + ": " + e.getClass().getName() + " escaped", e);
        }
        String message = e.getMessage();
        if (message == null || message.isBlank() || message.contains("\n") || message.contains("\r")) {
            throw new AssertionError(what + ": not a one-line message: " + message, e);
        }
    }

    private static void assertUnchanged(Path file, byte[] bytes, String what, String by) throws IOException {
        byte[] now = Files.readAllBytes(file);
        if (!Arrays.equals(bytes, now)) {
            fail(what + ": " + by + " changed the file (first difference at byte " + Arrays.mismatch(bytes, now) + ", "
                    + bytes.length + " -> " + now.length + " bytes)");
        }
    }

    private CowInspector.Report inspect(Path file, byte[] bytes, String what) throws IOException {
        CowInspector.Report report = null;
        try (FileDevice cow = FileDevice.open(file, FileDevice.Option.READ_ONLY)) {
            // Without an origin: what cow check says about the COW alone must agree with the loader.
            report = CowInspector.inspect(cow, 512, -1);
            count(report.clean() ? "inspector clean" : "inspector problems");
        } catch (IOException | RuntimeException e) {
            assertOneLine(e, what + ": the inspector");
            count("inspector unreadable");
        }
        assertUnchanged(file, bytes, what, "the inspector");
        return report;
    }

    private static int header(byte[] b, int offset) {
        return b.length >= offset + 4
                ? ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(offset)
                : 0;
    }

    /** The remaps a load passed on, into the exception table as a table load puts them. */
    private static final class Recorder implements RemapSink {
        final List<long[]> remaps = new ArrayList<>();
        final RemapSink table;

        Recorder(ExceptionTable table) {
            this.table = table.loadingSink();
        }

        @Override
        public void remap(long oldChunk, long newChunk) throws IOException {
            remaps.add(new long[] {oldChunk, newChunk});
            table.remap(oldChunk, newChunk);
        }

        @Override
        public void endOfList() throws IOException {
            table.endOfList();
        }
    }

    private void loadAsTable(Path file, byte[] bytes, CowInspector.Report report, Random r, String what)
            throws IOException {
        int magic = header(bytes, 0);
        int valid = header(bytes, 4);
        long headerChunk = Integer.toUnsignedLong(header(bytes, 12));
        // Mostly the table's chunk size agrees with the header (or is 0); sometimes not (the header wins, with a
        // warning).
        boolean plausible = headerChunk > 0 && headerChunk <= 128 && Long.bitCount(headerChunk) == 1;
        long tableChunk = switch (r.nextInt(256)) {
            case 0 -> 1L << r.nextInt(8);
            case 1, 2, 3, 4, 5, 6, 7, 8 -> 0;
            default -> plausible ? headerChunk : 0;
        };
        boolean overflow = r.nextBoolean();
        List<String> afterAppend = null;
        try (FileDevice cow = FileDevice.open(file);
                ExceptionTable table = new ExceptionTable()) {
            PersistentExceptionStore store =
                    new PersistentExceptionStore(cow, new ChunkSize(tableChunk), overflow, 512);
            Recorder recorder = new Recorder(table);
            LoadResult result;
            try {
                result = store.load(recorder);
            } catch (IOException | RuntimeException e) {
                store.close();
                assertOneLine(e, what + ": the load");
                count("load refused");
                assertUnchanged(file, bytes, what, "a refused load");
                if (magic == PersistentLayout.SNAP_MAGIC && valid != 0 && report != null) {
                    assertFalse(
                            report.problems().isEmpty(),
                            what + ": the load refused it (" + e.getMessage() + ") but the inspector found nothing: "
                                    + report.notes());
                    // One vocabulary (CowDamage): cow check words the damage as the load does.
                    assertTrue(
                            report.problems().stream().anyMatch(p -> p.message().endsWith(e.getMessage())),
                            what + ": the load refused it with \"" + e.getMessage() + "\" but the inspector words it "
                                    + report.problems());
                }
                return;
            }
            try {
                if (result == LoadResult.INVALID) {
                    count("load INVALID");
                    assertEquals(0, valid, what + ": INVALID with valid=" + valid);
                    assertEquals(List.of(), recorder.remaps, what + ": an invalid COW replays nothing");
                    assertUnchanged(file, bytes, what, "loading an invalid COW");
                    return;
                }
                count("load VALID");
                if (magic == 0) {
                    checkFormatted(file, store, what);
                    return;
                }
                assertUnchanged(file, bytes, what, "a load");
                checkConsistent(store, recorder, table, cow.sizeBytes(), what);
                if (report != null) {
                    List<String> listed = report.exceptions().stream()
                            .map(x -> x.oldChunk() + "->" + x.newChunk())
                            .toList();
                    assertEquals(
                            listed,
                            recorder.remaps.stream()
                                    .map(x -> x[0] + "->" + x[1])
                                    .toList(),
                            what + ": the inspector lists other exceptions than the load replays");
                    for (CowInspector.Problem p : report.problems()) {
                        assertEquals(
                                CowDamage.STALE_AFTER_TERMINATOR,
                                p.kind(),
                                what + ": loaded, but the inspector reports " + p);
                    }
                }
                afterAppend = append(store, recorder, cow.sizeBytes(), r, what);
            } finally {
                store.close();
            }
        }
        if (afterAppend != null) {
            reload(file, afterAppend, what);
        }
    }

    /** A new COW was formatted: the kernel's header and a zeroed area 0. */
    private static void checkFormatted(Path file, PersistentExceptionStore store, String what) throws IOException {
        byte[] now = Files.readAllBytes(file);
        long sectors = store.chunkSize().sectors();
        assertEquals(PersistentLayout.SNAP_MAGIC, header(now, 0), what + ": magic after formatting");
        assertEquals(1, header(now, 4), what);
        assertEquals(1, header(now, 8), what);
        assertEquals(sectors, header(now, 12), what);
        int chunkBytes = (int) (sectors * 512);
        assertArrayEquals(
                new byte[chunkBytes], Arrays.copyOfRange(now, chunkBytes, 2 * chunkBytes), what + ": area 0 is zeroed");
    }

    private static void checkConsistent(
            PersistentExceptionStore store, Recorder recorder, ExceptionTable table, long cowBytes, String what) {
        PersistentLayout layout = new PersistentLayout(store.chunkSize());
        long cowChunks = cowBytes / layout.chunkBytes();
        Set<Long> news = new HashSet<>();
        Set<Long> olds = new HashSet<>();
        for (long[] remap : recorder.remaps) {
            String which = what + ": remap " + remap[0] + " -> " + remap[1];
            assertTrue(remap[0] >= 0, which + ": a negative origin chunk");
            assertTrue(
                    remap[1] >= PersistentLayout.FIRST_DATA_CHUNK && remap[1] < cowChunks,
                    which + ": outside the data chunks of a COW of " + cowChunks + " chunks");
            assertFalse(layout.isMetadataChunk(remap[1]), which + ": into metadata");
            assertTrue(news.add(remap[1]), which + ": a COW chunk used twice");
            assertTrue(olds.add(remap[0]), which + ": an origin chunk remapped twice");
            assertEquals(remap[1], table.lookup(remap[0]), which + ": the exception table");
        }
        assertEquals(recorder.remaps.size(), table.size(), what + ": the exception table's size");
    }

    /**
     * The next allocation of a loaded store is a free data chunk; once committed, the list with it
     * appended is what a reload must find (stale entries after the old terminator must not come
     * back). Null when nothing was appended (the COW is full, or the commit failed).
     */
    private List<String> append(PersistentExceptionStore store, Recorder loaded, long cowBytes, Random r, String what)
            throws IOException {
        Set<Long> olds = new HashSet<>();
        Set<Long> news = new HashSet<>();
        loaded.remaps.forEach(x -> {
            olds.add(x[0]);
            news.add(x[1]);
        });
        long old;
        do {
            old = r.nextInt(1 << 16);
        } while (olds.contains(old));
        PendingRemap remap;
        try {
            remap = store.prepare(old);
        } catch (StoreFullException e) {
            count("append: full");
            return null;
        }
        PersistentLayout layout = new PersistentLayout(store.chunkSize());
        long cowChunks = cowBytes / layout.chunkBytes();
        assertFalse(news.contains(remap.newChunk()), what + ": allocated COW chunk " + remap.newChunk() + " is in use");
        assertFalse(layout.isMetadataChunk(remap.newChunk()), what + ": allocated metadata chunk " + remap.newChunk());
        assertTrue(remap.newChunk() < cowChunks, what + ": allocated chunk " + remap.newChunk() + " past the end");
        boolean[] ok = {false};
        store.commit(remap, true, (x, success) -> ok[0] = success);
        if (!ok[0]) {
            count("append: commit failed"); // the next area does not fit: the kernel invalidates then too
            return null;
        }
        List<String> expected = new ArrayList<>(
                loaded.remaps.stream().map(x -> x[0] + "->" + x[1]).toList());
        expected.add(remap.oldChunk() + "->" + remap.newChunk());
        return expected;
    }

    private void reload(Path file, List<String> expected, String what) throws IOException {
        count("append: reloaded");
        try (FileDevice cow = FileDevice.open(file);
                ExceptionTable table = new ExceptionTable()) {
            PersistentExceptionStore again = new PersistentExceptionStore(cow, ChunkSize.NOT_SET, false, 512);
            Recorder recorder = new Recorder(table);
            try {
                assertEquals(LoadResult.VALID, again.load(recorder), what + ": reload after an append");
            } catch (IOException e) {
                throw new AssertionError(
                        what + ": the reload after appending " + expected.getLast() + " failed: " + e.getMessage(), e);
            } finally {
                again.close();
            }
            assertEquals(
                    expected,
                    recorder.remaps.stream().map(x -> x[0] + "->" + x[1]).toList(),
                    what + ": the list after appending " + expected.getLast());
        }
    }
}
