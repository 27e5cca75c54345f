package dmsnap.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.testing.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(Seeds.class)
class ExceptionTableTest {

    private static List<ExceptionRun> runs(ExceptionTable t) {
        List<ExceptionRun> list = new ArrayList<>();
        t.forEachRunDescending(list::add);
        return list.reversed();
    }

    @Test
    void consecutiveInsertsExtendARunAtTheEndAndAtTheFront() {
        try (ExceptionTable t = new ExceptionTable()) {
            assertTrue(t.insert(10, 100));
            assertTrue(t.insert(11, 101));
            assertTrue(t.insert(12, 102));
            assertTrue(t.insert(9, 99));
            assertEquals(List.of(new ExceptionRun(9, 99, 3)), runs(t));
            assertEquals(4, t.size());
            assertEquals(1, t.runCount());
            assertEquals(101, t.lookup(11));
            assertEquals(-1, t.lookup(13));
            assertEquals(-1, t.lookup(8));
        }
    }

    @Test
    void aGapInNewChunksStartsANewRunAndRunsAreNeverCoalesced() {
        try (ExceptionTable t = new ExceptionTable()) {
            t.insert(10, 100);
            t.insert(11, 200);
            t.insert(13, 300);
            t.insert(12, 299); // extends 13's run at the front; 11's run ends at new 200: no link
            assertEquals(
                    List.of(new ExceptionRun(10, 100, 0), new ExceptionRun(11, 200, 0), new ExceptionRun(12, 299, 1)),
                    runs(t));
        }
    }

    @Test
    void runsStopAtTheGroupBoundaryOf256Chunks() {
        try (ExceptionTable t = new ExceptionTable()) {
            for (int i = 0; i < 600; i++) {
                t.insert(i, 1000 + i);
            }
            assertEquals(
                    List.of(
                            new ExceptionRun(0, 1000, 255),
                            new ExceptionRun(256, 1256, 255),
                            new ExceptionRun(512, 1512, 87)),
                    runs(t));
            for (int i = 0; i < 600; i++) {
                assertEquals(1000 + i, t.lookup(i));
            }
            assertTrue(t.memoryBytes() < 64 * 80 * 12, "three runs fit the initial slots: " + t.memoryBytes());
        }
    }

    /**
     * The loading sink gathers consecutive remaps into runs; whatever the order (sequential
     * stretches, reversed ones, gaps in new chunks, group boundaries, a run joined from an
     * earlier stretch), the table it builds has the runs one-by-one inserts give.
     */
    @Test
    void theLoadingSinkPacksAsOneByOneInserts() throws Exception {
        Random random = Seeds.random("loading-sink");
        for (int round = 0; round < 200; round++) {
            List<long[]> remaps = new ArrayList<>();
            java.util.Set<Long> used = new java.util.HashSet<>();
            long nextNew = 1 + random.nextInt(5);
            int stretches = 1 + random.nextInt(12);
            for (int st = 0; st < stretches; st++) {
                long start =
                        random.nextBoolean() ? random.nextInt(2048) : (remaps.isEmpty() ? 0 : remaps.getLast()[0] + 1);
                int length = 1 + random.nextInt(random.nextBoolean() ? 8 : 600);
                boolean down = random.nextInt(5) == 0;
                for (int i = 0; i < length; i++) {
                    long old = down ? start - i : start + i;
                    if (old < 0 || !used.add(old)) {
                        break;
                    }
                    if (random.nextInt(40) == 0) {
                        nextNew++; // a gap in the COW (a metadata chunk, a reused chunk)
                    }
                    remaps.add(new long[] {old, nextNew++});
                }
            }
            try (ExceptionTable loaded = new ExceptionTable();
                    ExceptionTable inserted = new ExceptionTable()) {
                RemapSink sink = loaded.loadingSink();
                for (long[] r : remaps) {
                    sink.remap(r[0], r[1]);
                    assertTrue(inserted.insert(r[0], r[1]));
                }
                sink.endOfList();
                assertEquals(runs(inserted), runs(loaded), "round " + round);
                assertEquals(inserted.size(), loaded.size());
                assertEquals(inserted.runCount(), loaded.runCount());
                for (long[] r : remaps) {
                    assertEquals(r[1], loaded.lookup(r[0]));
                }
                // Merge removals: a range at once on one table, chunk by chunk from the top on the other.
                for (int m = 0; m < 20 && inserted.size() > 0; m++) {
                    long top = remaps.get(random.nextInt(remaps.size()))[0];
                    long length = 1 + random.nextInt(300);
                    String one = null;
                    String range = null;
                    try {
                        for (long c = top; c > top - length && c >= 0; c--) {
                            inserted.removeForMerge(c);
                        }
                    } catch (CorruptStoreException e) {
                        one = e.getMessage();
                    }
                    try {
                        long first = Math.max(0, top - length + 1);
                        loaded.removeRangeForMerge(first, top - first + 1);
                    } catch (CorruptStoreException e) {
                        range = e.getMessage();
                    }
                    assertEquals(one, range, "round " + round);
                    assertEquals(runs(inserted), runs(loaded), "round " + round + " after removals");
                    assertEquals(inserted.size(), loaded.size());
                    if (one != null) {
                        break;
                    }
                }
            }
        }
    }

    @Test
    void theLoadingSinkRefusesASecondExceptionInsideARun() throws Exception {
        try (ExceptionTable t = new ExceptionTable()) {
            RemapSink sink = t.loadingSink();
            sink.remap(5, 50);
            sink.remap(6, 51);
            sink.remap(20, 60);
            sink.remap(4, 70);
            sink.remap(5, 71); // 5 is taken: found when the stretch 4..5 is added
            CorruptStoreException e = assertThrows(CorruptStoreException.class, sink::endOfList);
            assertEquals(
                    "origin chunk 5 has a second exception (COW chunk 71; the first points at COW chunk 50)",
                    e.getMessage());
        }
    }

    @Test
    void aSecondInsertOfAChunkIsRefused() {
        try (ExceptionTable t = new ExceptionTable()) {
            assertTrue(t.insert(5, 50));
            assertFalse(t.insert(5, 51));
            assertEquals(50, t.lookup(5));
            assertEquals(1, t.size());
        }
    }

    @Test
    void mergeRemovesOnlyAtRunEndsWithTheKernelsErrors() throws CorruptStoreException {
        try (ExceptionTable t = new ExceptionTable()) {
            for (int i = 0; i < 5; i++) {
                t.insert(20 + i, 2 + i);
            }
            CorruptStoreException middle = assertThrows(CorruptStoreException.class, () -> t.removeForMerge(22));
            assertEquals("Attempt to merge block 22 from the middle of a chunk range [20 - 24]", middle.getMessage());
            CorruptStoreException missing = assertThrows(CorruptStoreException.class, () -> t.removeForMerge(99));
            assertEquals(
                    "Corruption detected: exception for block 99 is on disk but not in memory", missing.getMessage());
            t.removeForMerge(24);
            t.removeForMerge(20);
            assertEquals(List.of(new ExceptionRun(21, 3, 2)), runs(t));
            t.removeForMerge(23);
            t.removeForMerge(22);
            t.removeForMerge(21);
            assertEquals(0, t.size());
            assertEquals(0, t.runCount());
            assertEquals(-1, t.lookup(21));
        }
    }

    @Test
    void limitsAreEnforcedWithAClearMessage() {
        try (ExceptionTable t = new ExceptionTable()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.insert(1L << 43, 5));
            assertTrue(e.getMessage().contains("the exception table's limit"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> t.insert(5, 1L << 40));
            assertEquals(-1, t.lookup(1L << 50));
        }
    }

    @Test
    void closeIsIdempotentAndLaterUseFails() {
        ExceptionTable t = new ExceptionTable();
        t.insert(1, 2);
        t.close();
        t.close();
        assertThrows(IllegalStateException.class, () -> t.lookup(1));
        assertThrows(IllegalStateException.class, () -> t.insert(3, 4));
    }

    /** The kernel's algorithm on a sorted list of runs per group: the reference. */
    private static final class KernelModel {
        final Map<Long, List<long[]>> buckets = new TreeMap<>(); // group -> sorted runs {old, new, count}

        void insert(long o, long n) {
            List<long[]> bucket = buckets.computeIfAbsent(o >>> 8, g -> new ArrayList<>());
            for (long[] e : bucket) {
                if (o == e[0] + e[2] + 1 && n == e[1] + e[2] + 1) {
                    e[2]++;
                    return;
                }
                if (o == e[0] - 1 && n == e[1] - 1) {
                    e[0]--;
                    e[1]--;
                    e[2]++;
                    return;
                }
            }
            int at = 0;
            while (at < bucket.size() && bucket.get(at)[0] < o) {
                at++;
            }
            bucket.add(at, new long[] {o, n, 0});
        }

        long lookup(long c) {
            for (long[] e : buckets.getOrDefault(c >>> 8, List.of())) {
                if (c >= e[0] && c <= e[0] + e[2]) {
                    return e[1] + c - e[0];
                }
            }
            return -1;
        }

        String remove(long c) {
            List<long[]> bucket = buckets.getOrDefault(c >>> 8, new ArrayList<>());
            for (int i = 0; i < bucket.size(); i++) {
                long[] e = bucket.get(i);
                if (c >= e[0] && c <= e[0] + e[2]) {
                    if (e[2] == 0) {
                        bucket.remove(i);
                    } else if (c == e[0]) {
                        e[0]++;
                        e[1]++;
                        e[2]--;
                    } else if (c == e[0] + e[2]) {
                        e[2]--;
                    } else {
                        return "Attempt to merge block " + c + " from the middle of a chunk range [" + e[0] + " - "
                                + (e[0] + e[2]) + "]";
                    }
                    return null;
                }
            }
            return "Corruption detected: exception for block " + c + " is on disk but not in memory";
        }

        List<ExceptionRun> runs() {
            List<ExceptionRun> all = new ArrayList<>();
            buckets.values().forEach(b -> b.forEach(e -> all.add(new ExceptionRun(e[0], e[1], (int) e[2]))));
            all.sort(java.util.Comparator.comparingLong(ExceptionRun::oldChunk));
            return all;
        }
    }

    @Test
    void randomInsertsAndMergeRemovalsMatchTheKernelModel() {
        Random random = Seeds.random("exception-table-model");
        for (int round = 0; round < 40; round++) {
            try (ExceptionTable t = new ExceptionTable()) {
                KernelModel model = new KernelModel();
                long nextNew = 2;
                long span = 1 + random.nextInt(round % 2 == 0 ? 2000 : 200_000);
                for (int step = 0; step < 3000; step++) {
                    int kind = random.nextInt(10);
                    long o;
                    long n;
                    if (kind < 4) { // sequential: next chunk after a random existing point
                        o = random.nextLong(span);
                        n = nextNew++;
                        for (int k = 0; k < 1 + random.nextInt(40) && model.lookup(o) < 0; k++, o++) {
                            model.insert(o, n);
                            assertTrue(t.insert(o, n));
                            n = nextNew++;
                        }
                        continue;
                    } else if (kind < 5) { // descending: front extensions
                        o = random.nextLong(span) + 40;
                        for (int k = 0; k < 1 + random.nextInt(20) && o >= 0 && model.lookup(o) < 0; k++, o--) {
                            n = nextNew;
                            // new chunks descending too, so the front extends
                            model.insert(o, 1_000_000_000L - n);
                            assertTrue(t.insert(o, 1_000_000_000L - n));
                            nextNew++;
                        }
                        continue;
                    } else if (kind < 8) { // random single
                        o = random.nextLong(span);
                        n = nextNew++;
                        if (model.lookup(o) < 0) {
                            model.insert(o, n);
                            assertTrue(t.insert(o, n));
                        } else {
                            assertFalse(t.insert(o, n));
                        }
                    } else { // merge-style removal of a random chunk
                        long c = random.nextLong(span + 50);
                        String expected = model.remove(c);
                        String actual = null;
                        try {
                            t.removeForMerge(c);
                        } catch (CorruptStoreException e) {
                            actual = e.getMessage();
                        }
                        assertEquals(expected, actual, "removal of " + c);
                    }
                }
                for (long c = 0; c < Math.min(span + 100, 50_000); c++) {
                    assertEquals(model.lookup(c), t.lookup(c), "lookup " + c);
                }
                for (int q = 0; q < 200; q++) {
                    long from = random.nextLong(span + 100);
                    long to = from + random.nextLong(1, 5000);
                    long expected = from;
                    while (expected < to && model.lookup(expected) < 0) {
                        expected++;
                    }
                    assertEquals(expected, t.cursor().next(from, to), "next(" + from + ", " + to + ")");
                }
                // One cursor walking up the table: has, next and end as the model says.
                ExceptionTable.Cursor cursor = t.cursor();
                for (long c = 0; c < Math.min(span + 100, 20_000); c += 1 + random.nextInt(40)) {
                    assertEquals(model.lookup(c) >= 0, cursor.has(c), "has " + c);
                    long to = c + 1 + random.nextInt(300);
                    long end = c;
                    while (end < to && model.lookup(end) >= 0) {
                        end++;
                    }
                    if (model.lookup(c) >= 0) {
                        assertEquals(end, cursor.end(c, to), "end(" + c + ", " + to + ")");
                    }
                    long next = c;
                    while (next < to && model.lookup(next) < 0) {
                        next++;
                    }
                    assertEquals(next, cursor.next(c, to), "next(" + c + ", " + to + ")");
                }
                List<ExceptionRun> expected = model.runs();
                assertEquals(expected, runs(t));
                assertEquals(expected.size(), t.runCount());
                assertEquals(expected.stream().mapToLong(r -> r.count() + 1L).sum(), t.size());
            }
        }
    }

    /** The chunks with an exception a walk of {@code cursor} reports in {@code [0, limit)}, as has/end/next tell them. */
    private static java.util.TreeSet<Long> walk(ExceptionTable.Cursor cursor, long limit) {
        java.util.TreeSet<Long> found = new java.util.TreeSet<>();
        for (long at = 0; at < limit; ) {
            if (cursor.has(at)) {
                long end = cursor.end(at, limit);
                assertTrue(end > at, "end(" + at + ") = " + end);
                for (long c = at; c < end; c++) {
                    found.add(c);
                }
                at = end;
            } else {
                long next = cursor.next(at, limit);
                assertTrue(next > at, "next(" + at + ") = " + next);
                at = next;
            }
        }
        return found;
    }

    /**
     * Over an origin large for the table, the occupancy bitmap starts coarse (a bit per stretch of
     * micro-groups) and gets finer as the table grows (filled segment by segment as they grow):
     * at every stage a walk reports exactly the model's chunks, and so does one cursor walking on
     * while the table grows under it, for what it reads after the inserts.
     */
    @Test
    void walksMatchTheModelWhileTheOccupancyGetsFiner() {
        Random random = Seeds.random("occupancy-walks");
        long origin = 1L << 24; // 2^20 micro-groups: a bit for 16 of them at first
        try (ExceptionTable t = new ExceptionTable()) {
            java.util.TreeSet<Long> model = new java.util.TreeSet<>();
            int firstShift = -1;
            long nextNew = 2;
            for (int stage = 0; stage < 9; stage++) {
                int count = 400 << stage;
                for (int i = 0; i < count; i++) {
                    long o = random.nextLong(origin);
                    if (random.nextInt(8) == 0) { // some runs too
                        for (int k = 0; k < 1 + random.nextInt(40) && o + k < origin && model.add(o + k); k++) {
                            assertTrue(t.insert(o + k, nextNew++));
                        }
                    } else if (model.add(o)) {
                        assertTrue(t.insert(o, nextNew++));
                    }
                }
                firstShift = firstShift < 0 ? t.occupancy().shift : firstShift;
                assertEquals(model, walk(t.cursor(), origin), "stage " + stage + ", " + t.occupancy());
            }
            assertTrue(
                    t.occupancy().shift < firstShift,
                    "the bitmap got finer: from a bit per " + (1 << firstShift) + " micro-groups to " + t.occupancy());
            // A cursor half-way through its walk while inserts (and growths) go on: what it reads
            // afterwards it reads from the grown table.
            ExceptionTable.Cursor cursor = t.cursor();
            long half = origin / 2;
            for (long at = 0; at < half; ) {
                at = cursor.has(at) ? cursor.end(at, half) : cursor.next(at, half);
            }
            for (int i = 0; i < 50_000; i++) {
                long o = half + (1L << 20) + random.nextLong(origin / 2 - (1L << 20));
                if (model.add(o)) {
                    assertTrue(t.insert(o, nextNew++));
                }
            }
            java.util.TreeSet<Long> secondHalf = new java.util.TreeSet<>();
            for (long at = half + (1L << 20); at < origin; ) {
                if (cursor.has(at)) {
                    secondHalf.add(at);
                    at++;
                } else {
                    at = cursor.next(at, origin);
                }
            }
            assertEquals(model.tailSet(half + (1L << 20)), secondHalf);
            assertEquals(model, walk(t.cursor(), origin));
        }
    }

    /** A walk while the table loads (no occupancy bitmap yet: every micro-group probed) and after. */
    @Test
    void aLoadingTableWalksAsTheModel() throws Exception {
        Random random = Seeds.random("loading-walks");
        long origin = 1L << 22;
        try (ExceptionTable t = new ExceptionTable()) {
            java.util.TreeSet<Long> model = new java.util.TreeSet<>();
            RemapSink sink = t.loadingSink();
            long nextNew = 2;
            for (int i = 1; i <= 30_000; i++) {
                long o = random.nextLong(origin);
                int length = random.nextInt(4) == 0 ? 1 + random.nextInt(300) : 1;
                for (int k = 0; k < length && o + k < origin && model.add(o + k); k++) {
                    sink.remap(o + k, nextNew++);
                }
                if (i % 10_000 == 0) {
                    // A remap that does not continue the ones the sink gathers adds them; it is the one gathered now.
                    long pending;
                    do {
                        pending = random.nextLong(origin);
                    } while (!model.add(pending));
                    nextNew += 7;
                    sink.remap(pending, nextNew++);
                    assertEquals(null, t.occupancy(), "no bitmap while loading");
                    java.util.TreeSet<Long> seen = walk(t.cursor(), origin);
                    seen.add(pending);
                    assertEquals(model, seen, "while loading");
                }
            }
            sink.endOfList();
            assertEquals(model, walk(t.cursor(), origin));
            assertTrue(t.occupancy() != null, "built at the end of the list");
        }
    }

    /**
     * A writer inserts (growing segments and refining the occupancy bitmap) while a walker walks
     * the whole origin, in phases: a walk sees every exception inserted before it began, and
     * never one that was not inserted (the writer is at most one batch ahead of it).
     */
    @Test
    void aWalkDuringInsertsSeesEveryEarlierOneAndNoneThatWasNot() throws Exception {
        Random random = Seeds.random("walk-while-inserting");
        long origin = 1L << 26;
        int batches = 14;
        List<long[]> planned = new ArrayList<>();
        java.util.Set<Long> distinct = new java.util.HashSet<>();
        for (int b = 0; b < batches; b++) {
            long[] batch = new long[200 << Math.min(b, 8)];
            for (int i = 0; i < batch.length; i++) {
                long o;
                do {
                    o = random.nextLong(origin);
                } while (!distinct.add(o));
                batch[i] = o;
            }
            planned.add(batch);
        }
        java.util.concurrent.Phaser phases = new java.util.concurrent.Phaser(2);
        try (ExceptionTable t = new ExceptionTable();
                ExecutorService pool = Executors.newSingleThreadExecutor()) {
            Future<?> writer = pool.submit(() -> {
                long nextNew = 2;
                for (long[] batch : planned) {
                    for (long o : batch) {
                        assertTrue(t.insert(o, nextNew++));
                    }
                    phases.arriveAndAwaitAdvance(); // batch b in; then b + 1 goes in during walk b
                }
                phases.arriveAndDeregister();
                return null;
            });
            try {
                java.util.TreeSet<Long> before = new java.util.TreeSet<>();
                java.util.TreeSet<Long> upToNext = new java.util.TreeSet<>();
                for (int b = 0; b < batches; b++) {
                    phases.arriveAndAwaitAdvance();
                    for (long o : planned.get(b)) {
                        before.add(o);
                    }
                    upToNext.clear();
                    upToNext.addAll(before);
                    if (b + 1 < batches) {
                        for (long o : planned.get(b + 1)) {
                            upToNext.add(o);
                        }
                    }
                    java.util.TreeSet<Long> seen = walk(t.cursor(), origin);
                    assertTrue(seen.containsAll(before), "walk " + b + " missed " + missing(before, seen));
                    assertTrue(upToNext.containsAll(seen), "walk " + b + " saw " + missing(seen, upToNext));
                }
                phases.arriveAndDeregister();
                writer.get();
                assertEquals(before, walk(t.cursor(), origin));
            } finally {
                phases.forceTermination(); // a failed walk must not leave the writer waiting
            }
        }
    }

    private static java.util.Set<Long> missing(java.util.Set<Long> expected, java.util.Set<Long> actual) {
        java.util.Set<Long> missing = new java.util.TreeSet<>(expected);
        missing.removeAll(actual);
        return missing.size() > 5 ? java.util.Set.copyOf(new ArrayList<>(missing).subList(0, 5)) : missing;
    }

    @Test
    void readersNeverSeeAWrongMappingWhileAWriterInsertsAndGrows() throws Exception {
        try (ExceptionTable t = new ExceptionTable()) {
            int total = 200_000;
            AtomicLong inserted = new AtomicLong();
            AtomicBoolean done = new AtomicBoolean();
            AtomicLong seen = new AtomicLong(); // the readers' checks so far
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<Long>> readers = new ArrayList<>();
                for (int r = 0; r < 3; r++) {
                    int seed = r;
                    readers.add(pool.submit(() -> {
                        Random random = new Random(Seeds.seed() + seed);
                        long checks = 0;
                        while (!done.get()) {
                            long limit = inserted.get();
                            if (limit == 0) {
                                continue;
                            }
                            long i = random.nextLong(limit);
                            long chunk = i * 3; // chunks 0, 3, 6, ... -> new 10 + i
                            long got = t.lookup(chunk);
                            if (got != 10 + i) {
                                throw new AssertionError("chunk " + chunk + " read " + got + ", expected " + (10 + i));
                            }
                            if (t.lookup(chunk + 1) != -1) {
                                throw new AssertionError("chunk " + (chunk + 1) + " was never inserted");
                            }
                            checks++;
                            seen.incrementAndGet();
                        }
                        return checks;
                    }));
                }
                for (long i = 0; i < total; i++) {
                    t.insert(i * 3, 10 + i);
                    inserted.set(i + 1);
                    if (i == total / 2) {
                        // Halfway, the readers look while the table goes on growing, however late a
                        // busy machine starts them (a reader that failed has ended: no wait then).
                        while (seen.get() <= 1000 && readers.stream().noneMatch(Future::isDone)) {
                            Thread.yield();
                        }
                    }
                }
                done.set(true);
                long checks = 0;
                for (Future<Long> f : readers) {
                    checks += f.get();
                }
                assertTrue(checks > 1000, "readers ran: " + checks);
            } finally {
                done.set(true);
                pool.shutdownNow();
            }
        }
    }

    /**
     * A load grows each segment many times (about 40 growths of each of the 64 for 300 000
     * random exceptions one by one): every remap is kept through all of them and through the
     * end of the list, where the segments settle at the size one-by-one inserts give them, and
     * the load closes a handful of shared arenas rather than one per growth (each close is a
     * handshake with every thread: 2,600 of them for 1 M exceptions).
     */
    @Test
    void manyGrowthsKeepEveryRemapAndALoadClosesFewArenas() throws Exception {
        Random random = Seeds.random("many-growths");
        int n = 300_000;
        long[] olds = new long[n];
        java.util.Set<Long> used = new java.util.HashSet<>();
        for (int i = 0; i < n; i++) {
            long o;
            do {
                o = random.nextLong(1L << 34);
            } while (!used.add(o));
            olds[i] = o;
        }
        try (ExceptionTable loaded = new ExceptionTable();
                ExceptionTable inserted = new ExceptionTable()) {
            RemapSink sink = loaded.loadingSink();
            for (int i = 0; i < n; i++) {
                sink.remap(olds[i], 2 + i);
                assertTrue(inserted.insert(olds[i], 2 + i));
                if (i % 9973 == 0) {
                    for (int j = 0; j < i; j += 997) {
                        assertEquals(2 + j, inserted.lookup(olds[j]), "inserted, after " + i);
                    }
                }
            }
            long closesWhileLoading = loaded.arenaCloses();
            sink.endOfList();
            long closesOfTheLoad = loaded.arenaCloses();
            for (int i = 0; i < n; i++) {
                assertEquals(2 + i, loaded.lookup(olds[i]), "loaded: origin chunk " + olds[i]);
                assertEquals(2 + i, inserted.lookup(olds[i]), "inserted: origin chunk " + olds[i]);
                assertEquals(-1, loaded.lookup(olds[i] + (1L << 34)));
            }
            assertEquals(n, loaded.size());
            assertEquals(
                    inserted.memoryBytes(), loaded.memoryBytes(), "a loaded table settles at the inserted one's size");
            assertTrue(inserted.arenaCloses() > 1000, "one close per growth when inserting: " + inserted.arenaCloses());
            assertTrue(
                    closesOfTheLoad <= 20,
                    "the load closed " + closesOfTheLoad + " arenas (" + closesWhileLoading
                            + " before the end of the list)");
            // Settled: growth continues as one-by-one inserts, by 1.15 into arenas of their own.
            for (int i = 0; i < 50_000; i++) {
                long o = (1L << 35) + i * 17L;
                assertTrue(loaded.insert(o, 1_000_000 + i));
                assertTrue(inserted.insert(o, 1_000_000 + i));
            }
            assertEquals(inserted.memoryBytes(), loaded.memoryBytes());
            assertEquals(2 + n / 2, loaded.lookup(olds[n / 2]));
        }
    }

    @Test
    void randomExceptionsCostAtMost16BytesEachAndSequentialOnesFarLess() {
        try (ExceptionTable random = new ExceptionTable();
                ExceptionTable sequential = new ExceptionTable()) {
            Random r = Seeds.random("bytes-per-exception");
            int n = 1_000_000;
            for (int i = 0; i < n; i++) {
                long o;
                do {
                    o = r.nextLong(1L << 34);
                } while (!random.insert(o, 2 + i));
                sequential.insert(i, 2 + i);
            }
            double perRandom = (double) (random.memoryBytes() + random.occupancyBytes()) / random.size();
            double perSequential =
                    (double) (sequential.memoryBytes() + sequential.occupancyBytes()) / sequential.size();
            System.out.printf(
                    "exception table: %.2f bytes per random exception, %.3f per sequential one (1M each)%n",
                    perRandom, perSequential);
            assertTrue(perRandom <= 16.0, "random: " + perRandom);
            assertTrue(perSequential < 1.0, "sequential: " + perSequential);
        }
    }
}
