package dmsnap.store;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.locks.StampedLock;
import java.util.function.Consumer;

/**
 * A snapshot's completed exceptions, origin chunk to COW chunk: the kernel's "complete" table
 * ({@code dm-snap.c}, {@code struct dm_exception_table} with {@code DM_CHUNK_CONSECUTIVE_BITS}),
 * off-heap and compact.
 *
 * <p><b>Runs, as the kernel packs them.</b> An entry is a run: origin chunks {@code [o, o+count]}
 * map to COW chunks {@code [n, n+count]}, count 0..255, never crossing a 256-chunk group
 * ({@code o >> 8}). Inserting (o, n) extends the run that ends at (o-1, n-1), else the run that
 * starts at (o+1, n+1) (at its front), else starts a run of one. Runs are never merged. Merge
 * removes chunks only at run ends; the kernel's two errors are reproduced word for word.
 *
 * <p><b>Layout.</b> Slots of 12 bytes in open-addressing tables (linear probing), split into
 * {@value #SEGMENTS} segments that each grow by 1.15x at 86% load, their sizes staggered so
 * they do not grow together: the table stays about 75-86% full at every size (~15 bytes per
 * random exception, ~1 byte per sequential one). A slot is
 * keyed by a 16-chunk "micro-group" ({@code chunk >> 4}); a run is stored once in every
 * micro-group it touches (at most 16), so a lookup probes one micro-group's key and finds at
 * most 16 runs there, wherever the exceptions are: expected O(1). Slot = int key (the micro-group's
 * low 32 bits) + long value: bit 63 occupied, bits 56-62 the micro-group's high bits, bits 16-55
 * the run's first COW chunk, bits 8-15 the run's first chunk within its 256-group, bits 0-7
 * count. Limits: origin chunks below 2^43, COW chunks below 2^40 (with 512-byte chunks: 4 PiB
 * and 512 TiB).
 *
 * <p><b>Arenas.</b> A settled segment's slots have a shared arena of their own, closed when the
 * segment grows: a close is a handshake with every thread, affordable for growth spread over a
 * snapshot's life. A load ({@link #loadingSink()}) grows the table thousands of times in a row
 * (about 2,600 growths for 1 M random exceptions), so while it runs segments double instead,
 * with the slots of each doubling level in one shared arena closed when its last segment leaves
 * it (a dozen closes for 1 M), and at the end of the list each segment moves into an arena of
 * its own at the capacity one-by-one inserts would have given it. Every arena's owner is this
 * table; all are closed by {@link #close()}.
 *
 * <p><b>Concurrency.</b> One writer at a time, lock-free readers: lookups run optimistically
 * under a {@link StampedLock} and retry under the read lock when a write intervened. A
 * resize frees the old slots' arena under the write lock; an optimistic reader that touches it
 * gets an {@link IllegalStateException} from the closed arena (shared arenas make that safe),
 * which counts as a failed validation. Lock order: take this table's lock last.
 */
public final class ExceptionTable implements AutoCloseable {
    static final int SEGMENTS = 64;
    private static final int SEGMENT_BITS = 6;
    private static final int MIN_CAPACITY = 16;
    private static final double MAX_LOAD = 0.86;
    private static final double GROWTH = 1.15;
    /** The largest origin chunk the packing holds; a loaded COW naming a larger one is refused. */
    public static final long MAX_OLD_CHUNK = (1L << 43) - 1;
    /** The largest COW chunk the packing holds. */
    public static final long MAX_NEW_CHUNK = (1L << 40) - 1;

    private static final long OCCUPIED = 1L << 63;
    private static final long SLOT_BYTES = 12;

    private final StampedLock lock = new StampedLock();
    private final Segment[] segments = new Segment[SEGMENTS];
    private long exceptions;
    private long runs;
    private boolean closed;
    /** While a loading sink fills the table: segments double, in the arenas of {@link #levels}. */
    private boolean loading;
    /** While loading: the arena of each doubling level (index: doublings since the segment's first size). */
    private final Level[] levels = new Level[64];
    /** Shared arenas closed so far (each close is a handshake with every thread). */
    private long arenaCloses;

    /**
     * The slots of every segment at one doubling level while loading, in one shared arena: the
     * segments (which fill evenly) all leave a level at about the same time, and the level's
     * arena is closed when its last segment leaves it. One close per level instead of one per
     * growth: a close is a handshake with every thread of the process.
     */
    private static final class Level {
        final Arena arena = Arena.ofShared();
        final int depth;
        int segments;

        Level(int depth) {
            this.depth = depth;
        }
    }

    /** One open-addressing table: keys and values in parallel off-heap arrays. */
    private static final class Segment {
        /** The segment's own arena, or null while its slots are in {@link #level}'s. */
        final Arena arena;

        final Level level;
        final MemorySegment keys;
        final MemorySegment values;
        final int capacity;
        int size;

        /** Slots in an arena of their own (the settled table). */
        Segment(int capacity) {
            this.capacity = capacity;
            this.arena = Arena.ofShared();
            this.level = null;
            this.keys = arena.allocate(ValueLayout.JAVA_INT, capacity);
            this.values = arena.allocate(ValueLayout.JAVA_LONG, capacity);
        }

        /** Slots in the arena of a doubling level (while loading). */
        Segment(int capacity, Level level) {
            this.capacity = capacity;
            this.arena = null;
            this.level = level;
            level.segments++;
            this.keys = level.arena.allocate(ValueLayout.JAVA_INT, capacity);
            this.values = level.arena.allocate(ValueLayout.JAVA_LONG, capacity);
        }

        int depth() {
            return level == null ? 0 : level.depth;
        }

        int home(long hash) {
            return (int) (((hash & 0xffffffffL) * capacity) >>> 32);
        }

        long value(int slot) {
            return values.getAtIndex(ValueLayout.JAVA_LONG, slot);
        }

        int key(int slot) {
            return keys.getAtIndex(ValueLayout.JAVA_INT, slot);
        }

        void set(int slot, int key, long value) {
            keys.setAtIndex(ValueLayout.JAVA_INT, slot, key);
            values.setAtIndex(ValueLayout.JAVA_LONG, slot, value);
        }
    }

    /** Frees {@code s}'s slots: its own arena, or its level's once no other segment is in it. Under the write lock. */
    private void free(Segment s) {
        if (s.arena != null) {
            s.arena.close();
            arenaCloses++;
        } else if (--s.level.segments == 0) {
            s.level.arena.close();
            arenaCloses++;
            levels[s.level.depth] = null;
        }
    }

    /** A segment of {@code capacity} slots: its own arena, or while loading its level's. Under the write lock. */
    private Segment newSegment(int capacity, int depth) {
        if (!loading) {
            return new Segment(capacity);
        }
        Level level = levels[depth];
        if (level == null) {
            level = levels[depth] = new Level(depth);
        }
        return new Segment(capacity, level);
    }

    /** Segments are created on first use: an empty table (a handover destination's) costs nothing. */
    public ExceptionTable() {}

    /**
     * Staggered over one growth step, so that the segments (which fill evenly) do not all resize
     * at once: the table's average load then stays near the middle of its range at every size.
     */
    private static int initialCapacity(int segment) {
        return (int) Math.round(MIN_CAPACITY * 4 * Math.pow(GROWTH, (double) segment / SEGMENTS));
    }

    /** The capacity after {@code capacity} when a settled segment grows. */
    private static int nextCapacity(int capacity) {
        return Math.max(MIN_CAPACITY, (int) Math.min(Integer.MAX_VALUE - 8, (long) (capacity * GROWTH) + 1));
    }

    /**
     * The capacity segment {@code segment} has when {@code slots} slots were put into it one by
     * one (the smallest of its growth steps that holds them under {@link #MAX_LOAD}).
     */
    private static int settledCapacity(int segment, int slots) {
        int capacity = initialCapacity(segment);
        while (slots > capacity * MAX_LOAD) {
            capacity = nextCapacity(capacity);
        }
        return capacity;
    }

    // ---- encoding ----------------------------------------------------------------------------

    private static long hash(long micro) {
        long h = micro * 0x9E3779B97F4A7C15L;
        h ^= h >>> 29;
        h *= 0xBF58476D1CE4E5B9L;
        return h ^ (h >>> 32);
    }

    private static int segmentOf(long hash) {
        return (int) (hash >>> (64 - SEGMENT_BITS));
    }

    private static long encode(long micro, long runOld, long runNew, int count) {
        return OCCUPIED | (micro >>> 32) << 56 | runNew << 16 | (runOld & 0xff) << 8 | count;
    }

    private static boolean matches(int key, long value, long micro) {
        return value < 0 && key == (int) micro && ((value >>> 56) & 0x7f) == (micro >>> 32);
    }

    private static long runOld(long micro, long value) {
        return (micro >>> 4) << 8 | ((value >>> 8) & 0xff);
    }

    private static long runNew(long value) {
        return (value >>> 16) & MAX_NEW_CHUNK;
    }

    private static int runCount(long value) {
        return (int) (value & 0xff);
    }

    // ---- reads ---------------------------------------------------------------------------------

    /** The COW chunk {@code oldChunk} maps to, or -1 when it has no completed exception. */
    public long lookup(long oldChunk) {
        if (oldChunk < 0 || oldChunk > MAX_OLD_CHUNK) {
            return -1;
        }
        long stamp = lock.tryOptimisticRead();
        if (stamp != 0) {
            try {
                long result = lookupUnlocked(oldChunk);
                if (lock.validate(stamp)) {
                    return result;
                }
            } catch (IllegalStateException | IndexOutOfBoundsException raced) {
                // A resize closed the slots under us: fall through to the read lock.
            }
        }
        stamp = lock.readLock();
        try {
            return lookupUnlocked(oldChunk);
        } finally {
            lock.unlockRead(stamp);
        }
    }

    private long lookupUnlocked(long oldChunk) {
        if (closed) {
            throw new IllegalStateException("the exception table is closed");
        }
        long micro = oldChunk >>> 4;
        Segment s = segments[segmentOf(hash(micro))];
        int slot = s == null ? -1 : findRun(s, micro, oldChunk);
        if (slot < 0) {
            return -1;
        }
        long v = s.value(slot);
        return runNew(v) + (oldChunk - runOld(micro, v));
    }

    /** The slot of the run in micro-group {@code micro} that contains {@code chunk}, or -1. */
    private static int findRun(Segment s, long micro, long chunk) {
        int cap = s.capacity;
        int i = s.home(hash(micro));
        for (int probes = 0; probes < cap; probes++) {
            long v = s.value(i);
            if (v == 0) {
                return -1;
            }
            if (matches(s.key(i), v, micro)) {
                long start = runOld(micro, v);
                if (chunk >= start && chunk <= start + runCount(v)) {
                    return i;
                }
            }
            if (++i == cap) {
                i = 0;
            }
        }
        return -1;
    }

    /** The slot in micro-group {@code micro} holding the run that starts at {@code runStart}, or -1. */
    private static int findRunStartingAt(Segment s, long micro, long runStart) {
        int cap = s.capacity;
        int i = s.home(hash(micro));
        for (int probes = 0; probes < cap; probes++) {
            long v = s.value(i);
            if (v == 0) {
                return -1;
            }
            if (matches(s.key(i), v, micro) && runOld(micro, v) == runStart) {
                return i;
            }
            if (++i == cap) {
                i = 0;
            }
        }
        return -1;
    }

    /** A cursor for one walk over origin chunks in order (see {@link Cursor}). */
    public Cursor cursor() {
        return new Cursor();
    }

    /**
     * A walk over origin chunks in order, for block status: it reads the runs of each 16-chunk
     * micro-group once (one probe sequence, lock-free like {@link #lookup}) and answers from them,
     * so that a walk costs a probe per micro-group however many questions it asks there. Not for
     * concurrent use: one per walk. A change to the table after a micro-group was read is seen
     * when the walk reaches the next one.
     */
    public final class Cursor {
        private long micro = -1;
        /** The runs touching {@link #micro}: first and last chunk (at most 16 disjoint runs). */
        private final long[] starts = new long[16];

        private final long[] ends = new long[16];
        private int count;

        private Cursor() {}

        private void load(long m) {
            if (m != micro) {
                count = runsIn(m, starts, ends);
                micro = m;
            }
        }

        /** Whether {@code chunk} has a completed exception. */
        public boolean has(long chunk) {
            if (chunk < 0 || chunk > MAX_OLD_CHUNK) {
                return false;
            }
            load(chunk >>> 4);
            for (int i = 0; i < count; i++) {
                if (starts[i] <= chunk && chunk <= ends[i]) {
                    return true;
                }
            }
            return false;
        }

        /** The first chunk in {@code [from, to)} with a completed exception, or {@code to}. */
        public long next(long from, long to) {
            long limit = Math.min(to, MAX_OLD_CHUNK + 1);
            for (long c = Math.max(0, from); c < limit; c = ((c >>> 4) + 1) << 4) {
                load(c >>> 4);
                long first = -1;
                for (int i = 0; i < count; i++) {
                    long start = Math.max(starts[i], c);
                    if (start <= ends[i] && (first < 0 || start < first)) {
                        first = start;
                    }
                }
                if (first >= 0) {
                    return Math.min(first, to);
                }
            }
            return to;
        }

        /** The first chunk in {@code [from, to)} without a completed exception, or {@code to}. */
        public long end(long from, long to) {
            long c = from;
            while (c < to && has(c)) {
                long runEnd = c;
                for (int i = 0; i < count; i++) {
                    if (starts[i] <= c && c <= ends[i]) {
                        runEnd = Math.max(runEnd, ends[i]);
                    }
                }
                c = runEnd + 1;
            }
            return Math.min(c, to);
        }
    }

    /** The runs touching micro-group {@code micro} into {@code starts}/{@code ends}; their count. */
    private int runsIn(long micro, long[] starts, long[] ends) {
        long stamp = lock.tryOptimisticRead();
        if (stamp != 0) {
            try {
                int n = runsInUnlocked(micro, starts, ends);
                if (lock.validate(stamp)) {
                    return n;
                }
            } catch (IllegalStateException | IndexOutOfBoundsException raced) {
                // A resize closed the slots under us: fall through to the read lock.
            }
        }
        stamp = lock.readLock();
        try {
            return runsInUnlocked(micro, starts, ends);
        } finally {
            lock.unlockRead(stamp);
        }
    }

    private int runsInUnlocked(long micro, long[] starts, long[] ends) {
        if (closed) {
            throw new IllegalStateException("the exception table is closed");
        }
        Segment s = segments[segmentOf(hash(micro))];
        if (s == null) {
            return 0;
        }
        int n = 0;
        int cap = s.capacity;
        int i = s.home(hash(micro));
        for (int probes = 0; probes < cap; probes++) {
            long v = s.value(i);
            if (v == 0) {
                break;
            }
            if (matches(s.key(i), v, micro) && n < starts.length) {
                starts[n] = runOld(micro, v);
                ends[n] = starts[n] + runCount(v);
                n++;
            }
            if (++i == cap) {
                i = 0;
            }
        }
        return n;
    }

    /** Exceptions (chunks), not runs. */
    public long size() {
        long stamp = lock.readLock();
        try {
            return exceptions;
        } finally {
            lock.unlockRead(stamp);
        }
    }

    public long runCount() {
        long stamp = lock.readLock();
        try {
            return runs;
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /** Off-heap bytes held, empty slots included. */
    public long memoryBytes() {
        long stamp = lock.readLock();
        try {
            long bytes = 0;
            for (Segment s : segments) {
                bytes += s == null ? 0 : s.capacity * SLOT_BYTES;
            }
            return bytes;
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /** Every run, highest origin chunk first (a sorted copy: O(n log n)). */
    public void forEachRunDescending(Consumer<ExceptionRun> visitor) {
        List<ExceptionRun> all = new ArrayList<>();
        long stamp = lock.readLock();
        try {
            requireOpen();
            for (Segment s : segments) {
                for (int i = 0; s != null && i < s.capacity; i++) {
                    long v = s.value(i);
                    if (v != 0) {
                        long micro = ((v >>> 56) & 0x7f) << 32 | Integer.toUnsignedLong(s.key(i));
                        long start = runOld(micro, v);
                        if (start >>> 4 == micro) { // the run's first micro-group: report it once
                            all.add(new ExceptionRun(start, runNew(v), runCount(v)));
                        }
                    }
                }
            }
        } finally {
            lock.unlockRead(stamp);
        }
        all.sort(Comparator.comparingLong(ExceptionRun::oldChunk).reversed());
        all.forEach(visitor);
    }

    // ---- writes --------------------------------------------------------------------------------

    /**
     * Adds the completed exception {@code oldChunk -> newChunk} with the kernel's packing.
     *
     * @return false (and changes nothing) when {@code oldChunk} already has an exception
     */
    public boolean insert(long oldChunk, long newChunk) {
        if (oldChunk < 0 || oldChunk > MAX_OLD_CHUNK) {
            throw new IllegalArgumentException(
                    "origin chunk " + oldChunk + " is outside 0.." + MAX_OLD_CHUNK + " (the exception table's limit)");
        }
        if (newChunk < 0 || newChunk > MAX_NEW_CHUNK) {
            throw new IllegalArgumentException(
                    "COW chunk " + newChunk + " is outside 0.." + MAX_NEW_CHUNK + " (the exception table's limit)");
        }
        long stamp = lock.writeLock();
        try {
            requireOpen();
            if (lookupUnlocked(oldChunk) >= 0) {
                return false;
            }
            long group = oldChunk >>> 8;
            // Extend the run that ends just before, in both old and new chunks.
            if ((oldChunk & 0xff) != 0) {
                ExceptionRun before = runContaining(oldChunk - 1);
                if (before != null
                        && before.lastOld() == oldChunk - 1
                        && before.lastNew() == newChunk - 1
                        && before.count() < 255
                        && (before.oldChunk() >>> 8) == group) {
                    replaceRun(before, new ExceptionRun(before.oldChunk(), before.newChunk(), before.count() + 1));
                    exceptions++;
                    return true;
                }
            }
            // Or the run that starts just after, at its front.
            if ((oldChunk & 0xff) != 0xff) {
                ExceptionRun after = runContaining(oldChunk + 1);
                if (after != null
                        && after.oldChunk() == oldChunk + 1
                        && after.newChunk() == newChunk + 1
                        && after.count() < 255) {
                    replaceRun(after, new ExceptionRun(oldChunk, newChunk, after.count() + 1));
                    exceptions++;
                    return true;
                }
            }
            addRun(new ExceptionRun(oldChunk, newChunk, 0));
            exceptions++;
            runs++;
            return true;
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    /**
     * Removes {@code oldChunk} for merge, only at a run's end, with the kernel's errors
     * ({@code remove_single_exception_chunk}).
     */
    public void removeForMerge(long oldChunk) throws CorruptStoreException {
        long stamp = lock.writeLock();
        try {
            requireOpen();
            ExceptionRun run = runContaining(oldChunk);
            if (run == null) {
                throw new CorruptStoreException(
                        "Corruption detected: exception for block " + oldChunk + " is on disk but not in memory");
            }
            if (run.count() == 0) {
                removeRun(run);
                runs--;
            } else if (oldChunk == run.oldChunk()) {
                replaceRun(run, new ExceptionRun(run.oldChunk() + 1, run.newChunk() + 1, run.count() - 1));
            } else if (oldChunk == run.lastOld()) {
                replaceRun(run, new ExceptionRun(run.oldChunk(), run.newChunk(), run.count() - 1));
            } else {
                throw new CorruptStoreException("Attempt to merge block " + oldChunk
                        + " from the middle of a chunk range [" + run.oldChunk() + " - " + run.lastOld() + "]");
            }
            exceptions--;
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    /**
     * Removes {@code oldChunk .. oldChunk + count - 1} for merge as {@link #removeForMerge} does
     * from the highest down, a run's whole tail inside the range at once (a merge step forgets
     * up to an area's worth of chunks: one at a time rewrote the run's slots at every chunk);
     * the kernel's errors for a chunk that is missing or inside a run.
     */
    public void removeRangeForMerge(long oldChunk, long count) throws CorruptStoreException {
        long c = oldChunk + count - 1;
        while (c >= oldChunk) {
            long removed = 0;
            long stamp = lock.writeLock();
            try {
                requireOpen();
                ExceptionRun run = runContaining(c);
                if (run != null && run.count() > 0 && run.lastOld() == c) {
                    long from = Math.max(run.oldChunk(), oldChunk);
                    if (from == run.oldChunk()) {
                        removeRun(run);
                        runs--;
                    } else {
                        replaceRun(run, new ExceptionRun(run.oldChunk(), run.newChunk(), (int)
                                (from - 1 - run.oldChunk())));
                    }
                    removed = c - from + 1;
                    exceptions -= removed;
                }
            } finally {
                lock.unlockWrite(stamp);
            }
            if (removed == 0) {
                removeForMerge(c); // a one-chunk run, or what removeForMerge refuses
                removed = 1;
            }
            c -= removed;
        }
    }

    /**
     * A sink for {@link ExceptionStore#load} that fills this table and refuses, as a {@link
     * CorruptStoreException}, a second exception for one origin chunk and chunks beyond what the
     * table holds (which only a damaged COW can hold). Consecutive remaps of
     * one 256-chunk group (as sequential writes leave them) are gathered and added as one run at
     * the first remap that does not continue them and at {@link RemapSink#endOfList()}: the
     * packing is what {@link #insert} one by one gives, without rewriting a growing run's slots
     * at every chunk (which made loading quadratic in the run length: a 4 KiB-chunk COW of
     * 65 536 exceptions loaded in 60-110 ms).
     */
    public RemapSink loadingSink() {
        long stamp = lock.writeLock();
        try {
            requireOpen();
            loading = true;
        } finally {
            lock.unlockWrite(stamp);
        }
        return new RemapSink() {
            private long first;
            private long firstNew;
            private long count;

            @Override
            public void remap(long oldChunk, long newChunk) throws IOException {
                if (!holds(oldChunk, newChunk)) {
                    throw new CorruptStoreException(beyondLimitsMessage(oldChunk, newChunk));
                }
                if (count > 0
                        && oldChunk == first + count
                        && newChunk == firstNew + count
                        && oldChunk >>> 8 == first >>> 8) {
                    count++;
                    return;
                }
                addPending();
                first = oldChunk;
                firstNew = newChunk;
                count = 1;
            }

            @Override
            public void endOfList() throws IOException {
                try {
                    addPending();
                } finally {
                    settle();
                }
            }

            private void addPending() throws IOException {
                if (count > 0 && !insertRunIfNew(first, firstNew, (int) count)) {
                    for (long i = 0; i < count; i++) {
                        if (!insert(first + i, firstNew + i)) {
                            count = 0;
                            throw new CorruptStoreException(
                                    secondExceptionMessage(first + i, firstNew + i, lookup(first + i)));
                        }
                    }
                }
                count = 0;
            }
        };
    }

    /**
     * Ends loading: each segment moves from its level's arena into one of its own, at the
     * capacity it would have reached by one-by-one inserts (so the settled table's footprint is
     * the same however it was filled), and the level arenas are closed as they empty.
     */
    private void settle() {
        long stamp = lock.writeLock();
        try {
            if (closed || !loading) {
                return;
            }
            loading = false;
            for (int i = 0; i < SEGMENTS; i++) {
                Segment s = segments[i];
                if (s != null && s.level != null) {
                    Segment own = new Segment(settledCapacity(i, s.size));
                    rehash(s, own);
                    segments[i] = own;
                    free(s);
                }
            }
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    /** Shared arenas this table has closed: a handshake with every thread each. For tests. */
    long arenaCloses() {
        long stamp = lock.readLock();
        try {
            return arenaCloses;
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /** Whether the packing can hold the remap {@code oldChunk -> newChunk}. */
    public static boolean holds(long oldChunk, long newChunk) {
        return oldChunk >= 0 && oldChunk <= MAX_OLD_CHUNK && newChunk >= 0 && newChunk <= MAX_NEW_CHUNK;
    }

    /** The loading sink's refusal of a remap the packing cannot hold (cow check words it so too). */
    public static String beyondLimitsMessage(long oldChunk, long newChunk) {
        return "origin chunk " + Long.toUnsignedString(oldChunk) + " (COW chunk " + Long.toUnsignedString(newChunk)
                + ") is beyond what the exception table holds (origin chunks up to " + MAX_OLD_CHUNK
                + ", COW chunks up to " + MAX_NEW_CHUNK + ")";
    }

    /** The loading sink's refusal of a second exception for one origin chunk (cow check words it so too). */
    public static String secondExceptionMessage(long oldChunk, long newChunk, long firstNewChunk) {
        return "origin chunk " + oldChunk + " has a second exception (COW chunk " + newChunk
                + "; the first points at COW chunk " + firstNewChunk + ")";
    }

    /**
     * Adds {@code count} (2 .. 256) exceptions {@code oldChunk + i -> newChunk + i} of one
     * 256-chunk group as {@link #insert} in ascending order would (joined to the run that ends
     * just before them, or a run of their own); false, with nothing changed, when one of them
     * exists already, a chunk is out of range or the join would not hold (insert then says which).
     */
    private boolean insertRunIfNew(long oldChunk, long newChunk, int count) {
        long lastOld = oldChunk + count - 1;
        if (count < 2
                || oldChunk < 0
                || lastOld > MAX_OLD_CHUNK
                || newChunk < 0
                || newChunk + count - 1 > MAX_NEW_CHUNK
                || oldChunk >>> 8 != lastOld >>> 8) {
            return false;
        }
        long stamp = lock.writeLock();
        try {
            requireOpen();
            for (long c = oldChunk; c <= lastOld; c++) {
                if (lookupUnlocked(c) >= 0) {
                    return false;
                }
            }
            // The first chunk joins the run before, as insert's first case, and each next one the
            // same run; a run after cannot be joined (its first chunk would be one of these).
            if ((oldChunk & 0xff) != 0) {
                ExceptionRun before = runContaining(oldChunk - 1);
                if (before != null && before.lastOld() == oldChunk - 1 && before.lastNew() == newChunk - 1) {
                    if (before.count() + count > 255 || before.oldChunk() >>> 8 != oldChunk >>> 8) {
                        return false;
                    }
                    replaceRun(before, new ExceptionRun(before.oldChunk(), before.newChunk(), before.count() + count));
                    exceptions += count;
                    return true;
                }
            }
            addRun(new ExceptionRun(oldChunk, newChunk, count - 1));
            exceptions += count;
            runs++;
            return true;
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    /** Frees the off-heap memory. Idempotent; later use fails with {@link IllegalStateException}. */
    @Override
    public void close() {
        long stamp = lock.writeLock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            for (Segment s : segments) {
                if (s != null) {
                    free(s);
                }
            }
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("the exception table is closed");
        }
    }

    // ---- slot maintenance (under the write lock) --------------------------------------------------

    private ExceptionRun runContaining(long chunk) {
        long micro = chunk >>> 4;
        Segment s = segments[segmentOf(hash(micro))];
        int slot = s == null ? -1 : findRun(s, micro, chunk);
        if (slot < 0) {
            return null;
        }
        long v = s.value(slot);
        return new ExceptionRun(runOld(micro, v), runNew(v), runCount(v));
    }

    private void addRun(ExceptionRun run) {
        for (long micro = run.oldChunk() >>> 4; micro <= run.lastOld() >>> 4; micro++) {
            putSlot(micro, encode(micro, run.oldChunk(), run.newChunk(), run.count()));
        }
    }

    private void removeRun(ExceptionRun run) {
        for (long micro = run.oldChunk() >>> 4; micro <= run.lastOld() >>> 4; micro++) {
            deleteSlot(micro, run.oldChunk());
        }
    }

    /** Rewrites a run's slots for its new extent, adding or deleting micro-groups at its ends. */
    private void replaceRun(ExceptionRun from, ExceptionRun to) {
        long fromFirst = from.oldChunk() >>> 4;
        long fromLast = from.lastOld() >>> 4;
        long toFirst = to.oldChunk() >>> 4;
        long toLast = to.lastOld() >>> 4;
        for (long micro = fromFirst; micro <= fromLast; micro++) {
            if (micro < toFirst || micro > toLast) {
                deleteSlot(micro, from.oldChunk());
            } else {
                Segment s = segments[segmentOf(hash(micro))];
                int slot = findRunStartingAt(s, micro, from.oldChunk());
                s.set(slot, (int) micro, encode(micro, to.oldChunk(), to.newChunk(), to.count()));
            }
        }
        for (long micro = toFirst; micro <= toLast; micro++) {
            if (micro < fromFirst || micro > fromLast) {
                putSlot(micro, encode(micro, to.oldChunk(), to.newChunk(), to.count()));
            }
        }
    }

    private void putSlot(long micro, long value) {
        long h = hash(micro);
        int index = segmentOf(h);
        Segment s = segments[index];
        if (s == null) {
            s = segments[index] = newSegment(initialCapacity(index), 0);
        }
        if (s.size + 1 > s.capacity * MAX_LOAD) {
            s = grow(index);
        }
        int i = s.home(h);
        while (s.value(i) != 0) {
            if (++i == s.capacity) {
                i = 0;
            }
        }
        s.set(i, (int) micro, value);
        s.size++;
    }

    /** Deletes the slot of the run starting at {@code runStart} in {@code micro}, shifting back followers. */
    private void deleteSlot(long micro, long runStart) {
        Segment s = segments[segmentOf(hash(micro))];
        int hole = findRunStartingAt(s, micro, runStart);
        if (hole < 0) {
            throw new IllegalStateException(
                    "exception table slot for run " + runStart + " in micro-group " + micro + " is missing");
        }
        int cap = s.capacity;
        int j = hole;
        while (true) {
            if (++j == cap) {
                j = 0;
            }
            long v = s.value(j);
            if (v == 0) {
                break;
            }
            long m = ((v >>> 56) & 0x7f) << 32 | Integer.toUnsignedLong(s.key(j));
            int home = s.home(hash(m));
            // j may move into the hole when its home is not cyclically inside (hole, j].
            boolean stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!stays) {
                s.set(hole, s.key(j), v);
                hole = j;
            }
        }
        s.set(hole, 0, 0);
        s.size--;
    }

    /**
     * Replaces segment {@code index} by a larger one: by {@link #GROWTH} when settled, doubled
     * while loading (fewer rehashes, and its level's arena is freed once all segments left it).
     */
    private Segment grow(int index) {
        Segment old = segments[index];
        int capacity = loading ? (int) Math.min(Integer.MAX_VALUE - 8, 2L * old.capacity) : nextCapacity(old.capacity);
        Segment bigger = newSegment(capacity, old.depth() + 1);
        rehash(old, bigger);
        segments[index] = bigger;
        free(old);
        return bigger;
    }

    /** Puts every slot of {@code from} into the empty {@code to}. */
    private static void rehash(Segment from, Segment to) {
        for (int i = 0; i < from.capacity; i++) {
            long v = from.value(i);
            if (v != 0) {
                int key = from.key(i);
                long micro = ((v >>> 56) & 0x7f) << 32 | Integer.toUnsignedLong(key);
                int j = to.home(hash(micro));
                while (to.value(j) != 0) {
                    if (++j == to.capacity) {
                        j = 0;
                    }
                }
                to.set(j, key, v);
                to.size++;
            }
        }
    }
}
