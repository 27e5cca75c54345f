package dmsnap.store;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
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
 * most 16 runs there, wherever the exceptions are: expected O(1). Slot = long value + int key,
 * side by side (one cache miss per probe), keyed by the micro-group's 39-bit hash (a bijection,
 * {@link #hash}): the key its low 32 bits, value bit 63 occupied, bits 56-62 the hash's high
 * bits, bits 16-55 the run's first COW chunk, bits 8-15 the run's first chunk within its
 * 256-group, bits 0-7 count; an entry's segment and home slot are read off its slot. Limits:
 * origin chunks below 2^43, COW chunks below 2^40 (with 512-byte chunks: 4 PiB and 512 TiB).
 *
 * <p><b>Robin Hood order.</b> The slots of a cluster are kept in the order of their home slots
 * (an insert shifts the entries homed later one slot up, a removal shifts them back), so a
 * probe stops at the first entry homed after its own: a miss, or reading all of a micro-group's
 * runs (which must look at every candidate), costs a few slots rather than a scan to the next
 * empty one (8 to 26 slots at 75-86% load).
 *
 * <p><b>Walks.</b> A {@link Cursor} walks origin chunks in order (block status, change maps). It
 * skips micro-groups without runs by an {@link Occupancy} bitmap (a bit per micro-group, or per
 * stretch of them when the table is sparse over a large origin: at most
 * {@value #OCCUPANCY_BITS_PER_SLOT} bits per slot, about 2% of the slots' bytes) and probes only
 * the others. The bitmap grows with the highest micro-group, coarser if the budget says so;
 * when the table's growth allows a finer one, a finer bitmap is filled from every insert and
 * from each segment as it grows (it visits its slots anyway), and replaces the coarse one once
 * all segments were through: no pass over the whole table under the write lock. A load builds
 * it once at the end.
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
    /** Micro-groups are below 2^39 (origin chunks below 2^43): their hash has as many bits. */
    private static final int HASH_BITS = 39;

    private static final long SLOT_BYTES = 12;
    /** The occupancy bitmap's budget: bits per slot of the table, and at least {@link #MIN_OCCUPANCY_BITS}. */
    static final int OCCUPANCY_BITS_PER_SLOT = 2;

    private static final long MIN_OCCUPANCY_BITS = 1 << 16;
    /** The most micro-groups a walk reads at once (see {@link Cursor}): under one optimistic read, or the read lock. */
    private static final int WINDOW = 32;

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
    /** Slots of all segments: the occupancy's budget. */
    private long slotCapacity;
    /** The highest micro-group a slot was ever put in (-1: none). */
    private long highestMicro = -1;
    /** Micro-groups that may hold runs, for walks; null while loading (a walk then probes each). */
    private Occupancy occupancy = new Occupancy(0, 0);
    /** A finer occupancy being filled (see the class comment), or null. */
    private Occupancy refining;
    /** The segments (a bit each) whose slots are not in {@link #refining} yet. */
    private long refiningMissing;

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

    /** One open-addressing table in Robin Hood order: slots of a value and a key, off-heap. */
    private static final class Segment {
        /** The segment's own arena, or null while its slots are in {@link #level}'s. */
        final Arena arena;

        final Level level;
        /** {@link #capacity} slots of {@link #SLOT_BYTES}: the value (a long, unaligned), then the key (an int). */
        final MemorySegment slots;

        final int capacity;
        int size;

        /** Slots in an arena of their own (the settled table). */
        Segment(int capacity) {
            this.capacity = capacity;
            this.arena = Arena.ofShared();
            this.level = null;
            this.slots = arena.allocate(SLOT_BYTES * capacity, 8);
        }

        /** Slots in the arena of a doubling level (while loading). */
        Segment(int capacity, Level level) {
            this.capacity = capacity;
            this.arena = null;
            this.level = level;
            level.segments++;
            this.slots = level.arena.allocate(SLOT_BYTES * capacity, 8);
        }

        int depth() {
            return level == null ? 0 : level.depth;
        }

        int home(long hash) {
            return (int) (((hash & 0xffffffffL) * capacity) >>> 32);
        }

        long value(int slot) {
            return slots.get(ValueLayout.JAVA_LONG_UNALIGNED, SLOT_BYTES * slot);
        }

        int key(int slot) {
            return slots.get(ValueLayout.JAVA_INT, SLOT_BYTES * slot + 8);
        }

        void set(int slot, int key, long value) {
            slots.set(ValueLayout.JAVA_LONG_UNALIGNED, SLOT_BYTES * slot, value);
            slots.set(ValueLayout.JAVA_INT, SLOT_BYTES * slot + 8, key);
        }

        /** How many slots past its home the entry in {@code slot} (of value {@code value}) is. */
        int distance(int slot, long value) {
            int d = slot - home(hashOf(key(slot), value));
            return d < 0 ? d + capacity : d;
        }

        /** Copies {@code count} slots from {@code from} to {@code to} (overlapping or not). */
        void move(int from, int to, int count) {
            MemorySegment.copy(slots, SLOT_BYTES * from, slots, SLOT_BYTES * to, SLOT_BYTES * count);
        }

        /**
         * Puts an entry where Robin Hood order wants it: after the entries homed at or before its
         * home, the ones homed later shifted one slot up. Under the write lock, with room.
         */
        void place(int key, long value, long hash) {
            int i = home(hash);
            for (int d = 0; ; d++) {
                long v = value(i);
                if (v == 0) {
                    break;
                }
                if (distance(i, v) < d) {
                    shiftUp(i);
                    break;
                }
                if (++i == capacity) {
                    i = 0;
                }
            }
            set(i, key, value);
            size++;
        }

        /**
         * Puts an entry homed at or after every entry here into the first empty slot from its
         * home, unless that is around the end of the table (then false, and nothing changed).
         */
        boolean append(int key, long value, long hash) {
            int i = home(hash);
            while (value(i) != 0) {
                if (++i == capacity) {
                    return false;
                }
            }
            set(i, key, value);
            size++;
            return true;
        }

        /** Moves the entries from {@code slot} to the next empty slot one slot up (around the end). */
        private void shiftUp(int slot) {
            int empty = slot;
            do {
                if (++empty == capacity) {
                    empty = 0;
                }
            } while (value(empty) != 0);
            if (empty > slot) {
                move(slot, slot + 1, empty - slot);
            } else {
                move(0, 1, empty);
                move(capacity - 1, 0, 1);
                move(slot, slot + 1, capacity - 1 - slot);
            }
        }

        /** Empties {@code slot}, shifting the entries after it that are not at home one slot down. */
        void remove(int slot) {
            int hole = slot;
            while (true) {
                int next = hole + 1 == capacity ? 0 : hole + 1;
                long v = value(next);
                if (v == 0 || distance(next, v) == 0) {
                    break;
                }
                move(next, hole, 1);
                hole = next;
            }
            set(hole, 0, 0);
            size--;
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

    private static final long HASH_MASK = (1L << HASH_BITS) - 1;
    private static final long MIX1 = 0x9E3779B97F4A7C15L & HASH_MASK;
    private static final long MIX2 = 0xBF58476D1CE4E5B9L & HASH_MASK;
    private static final long UNMIX1 = inverse(MIX1);
    private static final long UNMIX2 = inverse(MIX2);

    /**
     * A micro-group's hash: a bijection of the {@value #HASH_BITS}-bit micro-groups (odd
     * multipliers and xor-shifts modulo 2^39), so that a slot keeps the hash in place of the
     * micro-group and its segment (the top bits) and home (the low 32) are read off the slot
     * without hashing again; {@link #unhash} tells the micro-group back.
     */
    static long hash(long micro) {
        long h = (micro * MIX1) & HASH_MASK;
        h ^= h >>> 20;
        h = (h * MIX2) & HASH_MASK;
        return h ^ (h >>> 20);
    }

    static long unhash(long hash) {
        long h = hash ^ (hash >>> 20); // a shift by more than half the bits is its own inverse
        h = (h * UNMIX2) & HASH_MASK;
        h ^= h >>> 20;
        return (h * UNMIX1) & HASH_MASK;
    }

    /** The inverse of an odd number modulo 2^{@value #HASH_BITS} (Newton's iteration). */
    private static long inverse(long odd) {
        long x = odd;
        for (int i = 0; i < 6; i++) {
            x *= 2 - odd * x;
        }
        return x & HASH_MASK;
    }

    private static int segmentOf(long hash) {
        return (int) (hash >>> (HASH_BITS - SEGMENT_BITS));
    }

    private static long encode(long hash, long runOld, long runNew, int count) {
        return OCCUPIED | (hash >>> 32) << 56 | runNew << 16 | (runOld & 0xff) << 8 | count;
    }

    private static boolean matches(int key, long value, long hash) {
        return value < 0 && key == (int) hash && ((value >>> 56) & 0x7f) == (hash >>> 32);
    }

    /** The hash a slot of {@code key} and {@code value} keeps. */
    private static long hashOf(int key, long value) {
        return ((value >>> 56) & 0x7f) << 32 | Integer.toUnsignedLong(key);
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
                long result = lookupUnlocked(oldChunk, true);
                if (lock.validate(stamp)) {
                    return result;
                }
            } catch (IllegalStateException | IndexOutOfBoundsException raced) {
                // A resize closed the slots under us: fall through to the read lock.
            }
        }
        stamp = lock.readLock();
        try {
            return lookupUnlocked(oldChunk, true);
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /** {@code near}: for a read, where the chunk is likely found (see {@link #nearRun}); a write's checks likely miss. */
    private long lookupUnlocked(long oldChunk, boolean near) {
        if (closed) {
            throw new IllegalStateException("the exception table is closed");
        }
        long micro = oldChunk >>> 4;
        long h = hash(micro);
        Segment s = segments[segmentOf(h)];
        int slot = s == null ? -1 : findRun(s, h, micro, oldChunk, near);
        if (slot < 0) {
            return -1;
        }
        long v = s.value(slot);
        return runNew(v) + (oldChunk - runOld(micro, v));
    }

    /**
     * The slot of the run in micro-group {@code micro} that contains {@code chunk}, or -1. The
     * probe stops at an empty slot or at an entry homed after {@code micro}'s home (Robin Hood
     * order: none of {@code micro}'s runs comes after it). {@code near}: look at the first slots
     * at once first ({@link #nearRun}), for a read, where the chunk is likely found.
     */
    private static int findRun(Segment s, long hash, long micro, long chunk, boolean near) {
        int cap = s.capacity;
        int i = s.home(hash);
        if (near && i + NEAR <= cap) {
            int found = nearRun(s, i, hash, micro, chunk);
            if (found != 0) {
                return i + Integer.numberOfTrailingZeros(found);
            }
        }
        for (int d = 0; d < cap; d++) {
            long v = s.value(i);
            if (v == 0) {
                return -1;
            }
            if (matches(s.key(i), v, hash)) {
                long start = runOld(micro, v);
                if (chunk >= start && chunk <= start + runCount(v)) {
                    return i;
                }
            } else if (s.distance(i, v) < d) {
                return -1;
            }
            if (++i == cap) {
                i = 0;
            }
        }
        return -1;
    }

    /** Slots from the home slot on that {@link #nearRun} looks at without a branch per slot. */
    private static final int NEAR = 3;

    /**
     * Which of the {@value #NEAR} slots from {@code home} hold the run of micro-group {@code
     * micro} (of hash {@code hash}) that contains {@code chunk}: a bit each. Computed without a
     * branch per slot, because in Robin Hood order a run is usually among the first few slots
     * from its home but at no predictable one: a loop's exit there is a branch mispredicted per
     * lookup, and the processor then does not overlap one lookup's cache miss with the next's.
     * The slots after an empty one or after the micro-group's entries may hold anything: none
     * of them is {@code micro}'s and contains {@code chunk}.
     */
    private static int nearRun(Segment s, int home, long hash, long micro, long chunk) {
        long low = hash & 0xffffffffL;
        long top = OCCUPIED >>> 56 | hash >>> 32;
        long base = (micro >>> 4) << 8;
        int near = 0;
        for (int j = 0; j < NEAR; j++) {
            long v = s.value(home + j);
            long key = Integer.toUnsignedLong(s.key(home + j)) ^ low;
            long other = (v >>> 56) ^ top | key;
            long offset = chunk - (base | ((v >>> 8) & 0xff));
            // 1 when the slot is another micro-group's or its run does not hold chunk, else 0
            long miss = ((other | -other) | offset | ((v & 0xff) - offset)) >>> 63;
            near |= (int) (miss ^ 1) << j;
        }
        return near;
    }

    /** The slot in micro-group {@code micro} (of hash {@code hash}) holding the run that starts at {@code runStart}, or -1. */
    private static int findRunStartingAt(Segment s, long hash, long micro, long runStart) {
        int cap = s.capacity;
        int i = s.home(hash);
        for (int d = 0; d < cap; d++) {
            long v = s.value(i);
            if (v == 0) {
                return -1;
            }
            if (matches(s.key(i), v, hash)) {
                if (runOld(micro, v) == runStart) {
                    return i;
                }
            } else if (s.distance(i, v) < d) {
                return -1;
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
     * A walk over origin chunks in order, for block status and change maps. It reads the table
     * forward a window at a time, lock-free like {@link #lookup}: from a micro-group on, the next
     * ones the occupancy bitmap marks (the others have no runs and cost nothing), at most {@link
     * #window} of them, their home slots touched first and all at once (a probe is a cache miss
     * at random in the table, and these overlap), then each probed; and answers from the runs it
     * read, sorted, however many questions it asks there. The window doubles with every read up
     * to {@value #WINDOW}: a cursor asked once reads one micro-group, a long walk 32 at a time.
     * Not for concurrent use: one per walk. Each window is read once, after the walk began: a
     * change to a part the walk has read is not seen (a question before it reads again).
     */
    public final class Cursor {
        /** The micro-groups read: {@code [first, last]}; every run touching them is in {@link #starts}/{@link #ends}. */
        private long first = 1;

        private long last;
        /** First and last chunk of the runs read: sorted, disjoint. */
        private long[] starts = new long[16];

        private long[] ends = new long[16];
        private int runs;
        /** Where the last search stopped: walks go forward, so the next one starts here. */
        private int at;
        /** How many marked micro-groups the next read takes at most. */
        private int window = 1;

        private final long[] micros = new long[WINDOW];
        /** What the touches read: kept so that they are not optimized away. */
        private long touched;

        private Cursor() {}

        /** Reads from micro-group {@code m} on (before {@code limit}) unless it was read: then {@code first <= m <= last}. */
        private void read(long m, long limit) {
            if (m < first || m > last) {
                seek(m, limit);
            }
        }

        /** The first run read that ends at or after {@code chunk}, or {@link #runs}. */
        private int search(long chunk) {
            int i = at <= runs && (at == 0 || ends[at - 1] < chunk) ? at : 0;
            while (i < runs && ends[i] < chunk) {
                i++;
            }
            at = i;
            return i;
        }

        /** Whether {@code chunk} has a completed exception. */
        public boolean has(long chunk) {
            if (chunk < 0 || chunk > MAX_OLD_CHUNK) {
                return false;
            }
            long m = chunk >>> 4;
            read(m, m + 1);
            int i = search(chunk);
            return i < runs && starts[i] <= chunk;
        }

        /** The first chunk in {@code [from, to)} with a completed exception, or {@code to}. */
        public long next(long from, long to) {
            long limit = Math.min(to, MAX_OLD_CHUNK + 1);
            long limitMicro = ((limit - 1) >>> 4) + 1;
            for (long c = Math.max(0, from); c < limit; c = (last + 1) << 4) {
                read(c >>> 4, limitMicro);
                // A run not read starts after the micro-groups read, so after every run read.
                int i = search(c);
                if (i < runs) {
                    return Math.min(Math.max(c, starts[i]), to);
                }
            }
            return to;
        }

        /** The first chunk in {@code [from, to)} without a completed exception, or {@code to}. */
        public long end(long from, long to) {
            long c = from;
            while (c < to && has(c)) {
                c = ends[at] + 1; // has left at on the run holding c; the next may adjoin it
            }
            return Math.min(c, to);
        }

        private void seek(long m, long limit) {
            long stamp = lock.tryOptimisticRead();
            boolean read = false;
            if (stamp != 0) {
                try {
                    seekUnlocked(m, limit);
                    read = lock.validate(stamp);
                } catch (IllegalStateException | IndexOutOfBoundsException raced) {
                    // A resize closed the slots under us: fall through to the read lock.
                }
            }
            if (!read) {
                stamp = lock.readLock();
                try {
                    seekUnlocked(m, limit);
                } finally {
                    lock.unlockRead(stamp);
                }
            }
            window = Math.min(WINDOW, 2 * window);
        }

        /**
         * Reads the window from micro-group {@code m} on: the marked micro-groups before {@code
         * limit}, at most {@link #window} of them; {@code [first, last]} is then what it read.
         */
        private void seekUnlocked(long m, long limit) {
            if (closed) {
                throw new IllegalStateException("the exception table is closed");
            }
            Occupancy marked = occupancy;
            first = m;
            runs = 0;
            at = 0;
            int count = 0;
            long sum = touched;
            for (long g = m; count < window; g++) {
                g = marked == null ? g : marked.next(g, limit);
                if (g >= limit) {
                    break;
                }
                micros[count++] = g;
                long h = hash(g);
                Segment s = segments[segmentOf(h)];
                if (s != null) {
                    sum += s.value(s.home(h));
                }
            }
            touched = sum;
            last = count < window ? limit - 1 : micros[count - 1];
            for (int j = 0; j < count; j++) {
                if (starts.length - runs < 16) {
                    starts = Arrays.copyOf(starts, 2 * starts.length);
                    ends = Arrays.copyOf(ends, 2 * ends.length);
                }
                int from = runs;
                runs = runsInUnlocked(micros[j], starts, ends, runs);
                sortRuns(from, j == 0 ? Long.MIN_VALUE : micros[j] << 4);
            }
        }

        /**
         * Sorts the runs from {@code from} on (one micro-group's, at most 16) by their first
         * chunk, dropping those that start before {@code keepFrom}: a run that began in an
         * earlier micro-group of the window was read there.
         */
        private void sortRuns(int from, long keepFrom) {
            int n = from;
            for (int i = from; i < runs; i++) {
                long start = starts[i];
                long end = ends[i];
                if (start < keepFrom) {
                    continue;
                }
                int j = n++;
                while (j > from && starts[j - 1] > start) {
                    starts[j] = starts[j - 1];
                    ends[j] = ends[j - 1];
                    j--;
                }
                starts[j] = start;
                ends[j] = end;
            }
            runs = n;
        }
    }

    /**
     * Appends the runs touching micro-group {@code micro} to {@code starts}/{@code ends} from
     * {@code n} on (room for 16 needed), first and last chunk each; returns the new count. The
     * probe stops at an entry homed after the micro-group's home (Robin Hood order), told by the
     * entry's key alone: the low 32 bits of the hash it keeps, from which its home is computed.
     */
    private int runsInUnlocked(long micro, long[] starts, long[] ends, int n) {
        long h = hash(micro);
        Segment s = segments[segmentOf(h)];
        if (s == null) {
            return n;
        }
        MemorySegment slots = s.slots;
        long cap = s.capacity;
        long low = h & 0xffffffffL;
        long top = OCCUPIED >>> 56 | h >>> 32; // bits 56-63 of a matching value
        long base = (micro >>> 4) << 8;
        long limit = n + 16;
        long i = (low * cap) >>> 32;
        for (long d = 0; d < cap; d++) {
            long offset = i * SLOT_BYTES;
            long v = slots.get(ValueLayout.JAVA_LONG_UNALIGNED, offset);
            if (v == 0) {
                break;
            }
            long key = Integer.toUnsignedLong(slots.get(ValueLayout.JAVA_INT, offset + 8));
            if (key == low) {
                if (v >>> 56 == top && n < limit) {
                    long start = base | ((v >>> 8) & 0xff);
                    starts[n] = start;
                    ends[n] = start + (v & 0xff);
                    n++;
                }
            } else {
                long distance = i - ((key * cap) >>> 32);
                if ((distance < 0 ? distance + cap : distance) < d) {
                    break;
                }
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

    /** Heap bytes of the occupancy bitmaps walks read (the finer one being filled included). */
    public long occupancyBytes() {
        long stamp = lock.readLock();
        try {
            return (occupancy == null ? 0 : occupancy.bytes()) + (refining == null ? 0 : refining.bytes());
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /** The occupancy walks read now, for tests: null while loading. */
    Occupancy occupancy() {
        long stamp = lock.readLock();
        try {
            return occupancy;
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
                        long micro = unhash(hashOf(s.key(i), v));
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
            if (lookupUnlocked(oldChunk, false) >= 0) {
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
            occupancy = null; // built once at the end
            refining = null;
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
     * the same however it was filled), and the level arenas are closed as they empty; then the
     * occupancy bitmap is built, as fine as the settled table's budget allows.
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
                    slotCapacity += own.capacity - s.capacity;
                    free(s);
                }
            }
            Occupancy built = highestMicro < 0 ? new Occupancy(0, 0) : Occupancy.covering(highestMicro, budget());
            for (Segment s : segments) {
                if (s != null) {
                    markAll(s, built);
                }
            }
            occupancy = built;
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
                if (lookupUnlocked(c, false) >= 0) {
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
        long h = hash(micro);
        Segment s = segments[segmentOf(h)];
        int slot = s == null ? -1 : findRun(s, h, micro, chunk, false);
        if (slot < 0) {
            return null;
        }
        long v = s.value(slot);
        return new ExceptionRun(runOld(micro, v), runNew(v), runCount(v));
    }

    private void addRun(ExceptionRun run) {
        for (long micro = run.oldChunk() >>> 4; micro <= run.lastOld() >>> 4; micro++) {
            putSlot(micro, run);
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
                long h = hash(micro);
                Segment s = segments[segmentOf(h)];
                int slot = findRunStartingAt(s, h, micro, from.oldChunk());
                s.set(slot, (int) h, encode(h, to.oldChunk(), to.newChunk(), to.count()));
            }
        }
        for (long micro = toFirst; micro <= toLast; micro++) {
            if (micro < fromFirst || micro > fromLast) {
                putSlot(micro, to);
            }
        }
    }

    /** Stores {@code run} in micro-group {@code micro}'s slots. */
    private void putSlot(long micro, ExceptionRun run) {
        long h = hash(micro);
        int index = segmentOf(h);
        Segment s = segments[index];
        if (s == null) {
            s = segments[index] = newSegment(initialCapacity(index), 0);
            slotCapacity += s.capacity;
        }
        if (s.size + 1 > s.capacity * MAX_LOAD) {
            s = grow(index);
        }
        s.place((int) h, encode(h, run.oldChunk(), run.newChunk(), run.count()), h);
        mark(micro);
    }

    /** Marks {@code micro} in the occupancy bitmaps (a finer one being filled is dropped if it must coarsen). */
    private void mark(long micro) {
        highestMicro = Math.max(highestMicro, micro);
        if (occupancy != null) {
            occupancy = occupancy.mark(micro, budget());
        }
        if (refining != null) {
            Occupancy marked = refining.mark(micro, budget());
            refining = marked.shift == refining.shift ? marked : null;
        }
    }

    /** The occupancy bitmap's most bits at the table's present size. */
    private long budget() {
        return Math.max(MIN_OCCUPANCY_BITS, OCCUPANCY_BITS_PER_SLOT * slotCapacity);
    }

    /** Marks the micro-group of every slot of {@code s} in {@code marks}, which covers them all. */
    private static void markAll(Segment s, Occupancy marks) {
        for (int i = 0; i < s.capacity; i++) {
            long v = s.value(i);
            if (v != 0) {
                marks.set(unhash(hashOf(s.key(i), v)));
            }
        }
    }

    /** Deletes the slot of the run starting at {@code runStart} in {@code micro} (its bit stays marked). */
    private void deleteSlot(long micro, long runStart) {
        long h = hash(micro);
        Segment s = segments[segmentOf(h)];
        int hole = findRunStartingAt(s, h, micro, runStart);
        if (hole < 0) {
            throw new IllegalStateException(
                    "exception table slot for run " + runStart + " in micro-group " + micro + " is missing");
        }
        s.remove(hole);
    }

    /**
     * Replaces segment {@code index} by a larger one: by {@link #GROWTH} when settled, doubled
     * while loading (fewer rehashes, and its level's arena is freed once all segments left it).
     * Settled, it also brings the occupancy towards a finer one when the larger table's budget
     * allows it (see the class comment): this segment's slots go into it as they move.
     */
    private Segment grow(int index) {
        Segment old = segments[index];
        int capacity = loading ? (int) Math.min(Integer.MAX_VALUE - 8, 2L * old.capacity) : nextCapacity(old.capacity);
        Segment bigger = newSegment(capacity, old.depth() + 1);
        rehash(old, bigger);
        segments[index] = bigger;
        slotCapacity += bigger.capacity - old.capacity;
        free(old);
        if (!loading) {
            refine(index, bigger);
        }
        return bigger;
    }

    /** Starts a finer occupancy when the budget allows one, and puts segment {@code index}'s slots into it. */
    private void refine(int index, Segment s) {
        if (refining == null && occupancy != null && Occupancy.finestShift(highestMicro, budget()) < occupancy.shift) {
            refining = Occupancy.covering(highestMicro, budget());
            refiningMissing = 0;
            for (int i = 0; i < SEGMENTS; i++) {
                refiningMissing |= segments[i] == null ? 0 : 1L << i;
            }
        }
        if (refining != null && (refiningMissing & (1L << index)) != 0) {
            markAll(s, refining);
            refiningMissing &= ~(1L << index);
            if (refiningMissing == 0) {
                occupancy = refining;
                refining = null;
            }
        }
    }

    /**
     * Puts every slot of {@code from} into the empty {@code to}, from the start of a cluster on:
     * in home order, which is {@code to}'s too but for entries of one home in {@code from} (homes
     * grow with the key, the hash's low 32 bits, at any capacity). An entry whose key is the
     * highest yet goes to the first empty slot from its home, after every entry there (Robin Hood
     * order without looking at them); the others are placed as an insert places them.
     */
    private static void rehash(Segment from, Segment to) {
        int cap = from.capacity;
        int start = 0;
        while (start < cap && from.value(start) != 0) {
            start++;
        }
        long highest = -1;
        for (int k = 0, i = start == cap ? 0 : start; k < cap; k++, i = i + 1 == cap ? 0 : i + 1) {
            long v = from.value(i);
            if (v != 0) {
                int key = from.key(i);
                long unsigned = Integer.toUnsignedLong(key);
                if (unsigned < highest || !to.append(key, v, hashOf(key, v))) {
                    to.place(key, v, hashOf(key, v));
                }
                highest = Math.max(highest, unsigned);
            }
        }
    }
}
