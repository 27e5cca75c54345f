package dmsnap.store.testing;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.device.Device;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.device.MetadataMap;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * A device with a volatile write cache and injectable faults, over a "media" device that holds
 * what survived. Completed writes sit in the cache (reads see them) until {@link #flush()} moves
 * them to the media; {@link #crash()} loses every write since the last completed flush, and
 * {@link #crash(Random)} keeps a random subset, possibly torn at a sector boundary, as a disk
 * whose cache was partly written back.
 *
 * <p>The page cache ({@link #buffered()}, the {@code writeback} cache mode's COW data): writes
 * through that view sit in a second volatile cache, the file's dirty pages, which only this
 * device's {@link #flush()} (fdatasync of the file) writes back; a power cut loses them, or
 * keeps any subset of their pages ({@link #crash(Random)}: the kernel may have written some back
 * in any order). Reads on either path see them. A write, discard or write-zeroes that bypasses the
 * page cache first writes back the dirty pages it covers into the device's cache, as the kernel
 * does before direct I/O or fallocate. With {@link #mapsLikeFiles()} the metadata maps behave as
 * real shared mappings of a file: a sync is {@code msync(MS_SYNC)} (the range written and the
 * device cache flushed, the file's other dirty pages not written back) and a flush writes back
 * their unsynced stores. Closing a map (munmap) leaves its unsynced stores as dirty pages of the
 * file, in either case.
 *
 * <p>Faults, each consumed when it fires: fail the n-th read/write/flush from now, fail every
 * operation after n more, fail requests matching a predicate, tear the next write (its first k
 * sectors land, then EIO), drop the next write silently, corrupt the next write. Injected
 * failures are {@link ErrnoException}s with EIO (or the errno set by {@link #failWith}) and the
 * detail "injected fault".
 *
 * <p>Reads through the page cache can be recorded ({@link #recordsPageCacheReads()}): where, how
 * long, on which thread, and how many were in progress at once. Which of them the page cache
 * holds is the test's to say ({@link #pageCacheHolds}): those {@link Device#readIfCached} serves
 * through the view (with the same faults as any read); it counts its tries and what it served.
 *
 * <p>Interleavings: {@link #hold} puts a {@link Gate} before the device that parks matching
 * requests until the test releases them, and counts them, so that a test can stop a background
 * operation at a known point (a merge between two copies) and act while it is parked there.
 *
 * <p>Synchronised on itself: tests are about correctness, not speed. A request parked at the
 * gate holds no lock of the device.
 */
public final class FaultyDevice implements Device {

    /** The operations faults can target. */
    public enum Op {
        READ,
        WRITE,
        FLUSH,
        DISCARD,
        WRITE_ZEROES,
        /** {@link #allocate}, once {@link #reservesBlocks()} asked for it. */
        ALLOCATE
    }

    /** A request as faults see it; lengthBytes is 0 for a flush. */
    public record Request(Op op, long offsetBytes, long lengthBytes) {}

    private record CachedWrite(long offsetBytes, MemorySegment data) {}

    /** A read through {@link #buffered()}: its range, its thread, the page-cache reads in progress when it began. */
    public record PageCacheRead(long offsetBytes, long lengthBytes, String thread, int inProgress) {}

    /**
     * Parks the requests that its predicate holds until {@link #releaseParked()} or
     * {@link #open()}. The predicate sees each request once, when it arrives, before any fault
     * is considered; a released request goes on to the device (and its faults).
     */
    public static final class Gate {
        private static final long WAIT_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
        private final Predicate<Request> holds;
        /** Guarded by this. */
        private boolean open;

        private long releases;
        private int parked;
        private long held;

        private Gate(Predicate<Request> holds) {
            this.holds = holds;
        }

        /** Whether {@link #pass} would park {@code request} now (a read that must not wait asks). */
        private synchronized boolean wouldHold(Request request) {
            return !open && holds.test(request);
        }

        private synchronized void pass(Request request) throws java.io.InterruptedIOException {
            if (open || !holds.test(request)) {
                return;
            }
            long release = releases;
            parked++;
            held++;
            notifyAll();
            try {
                while (!open && releases == release) {
                    wait();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted while held at the gate: " + request);
            } finally {
                parked--;
                notifyAll();
            }
        }

        /** Requests parked now. */
        public synchronized int parked() {
            return parked;
        }

        /** Requests held so far (parked now or released). */
        public synchronized long held() {
            return held;
        }

        /**
         * Waits until at least {@code n} requests are parked; fails after 60 s (what must
         * happen did not).
         */
        public synchronized void awaitParked(int n) throws InterruptedException {
            long end = System.nanoTime() + WAIT_NANOS;
            while (parked < n) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("no " + n + " requests parked at the gate within 60 s (" + parked + ")");
                }
                java.util.concurrent.TimeUnit.NANOSECONDS.timedWait(this, left);
            }
        }

        /** Lets the requests parked now go on; later ones are held again. */
        public synchronized void releaseParked() {
            releases++;
            notifyAll();
        }

        /** Lets every request through, parked or to come, for good. */
        public synchronized void open() {
            open = true;
            notifyAll();
        }
    }

    private static final int SECTOR = 512;
    /** The page cache's unit of write-back. */
    private static final int PAGE = 4096;

    private final Device media;
    private final Arena arena = Arena.ofAuto();
    private final List<CachedWrite> cache = new ArrayList<>();
    /** Writes through {@link #buffered()} not yet written back, oldest first (the file's dirty pages). */
    private final List<CachedWrite> pageCache = new ArrayList<>();

    private final PageCacheView pageCacheView = new PageCacheView();
    private boolean mapsLikeFiles;
    /** {@link #reservesBlocks()}: the ranges {@link #allocate} reserved, in order; null: it reserves nothing. */
    private List<Request> reserved;

    /** {@link #recordsPageCacheReads()}: the reads through the page cache, in order; null: none recorded. */
    private List<PageCacheRead> pageCacheReads;
    /** Counted outside the lock: reads that arrive together, even if they then wait for it. */
    private final AtomicInteger pageCacheReadsInProgress = new AtomicInteger();
    /** {@link #pageCacheHolds}: the reads through the page cache it holds; null: none. */
    private Predicate<Request> pageCacheHolds;

    private long cachedReadTries;
    private long cachedReadsServed;
    private volatile String lastCachedReadThread;

    private boolean powerCut;
    private final List<EmulatedMap> maps = new ArrayList<>();
    private final long[] countdown = new long[Op.values().length];
    private long failAfterOps = -1;
    private Predicate<Request> failWhen;
    private int tearNextWriteSectors = -1;
    private boolean dropNextWrite;
    private Random corruptNextWrite;
    private volatile Gate gate;
    private long operations;
    private long flushes;
    private long injectedFaults;
    private Errno injectedErrno = Errno.EIO;
    private boolean failNextSizeQuery;

    public FaultyDevice(Device media) {
        this.media = media;
        java.util.Arrays.fill(countdown, -1);
    }

    // ---- fault injection -------------------------------------------------------------------

    /** The {@code n}-th (1-based) operation of kind {@code op} from now fails. */
    public synchronized FaultyDevice failNth(Op op, long n) {
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1");
        }
        countdown[op.ordinal()] = n;
        return this;
    }

    /** After {@code n} more successful operations of any kind, every operation fails. */
    public synchronized FaultyDevice failAfter(long n) {
        failAfterOps = n;
        return this;
    }

    /** Every request matching {@code predicate} fails (null clears). */
    public synchronized FaultyDevice failWhen(Predicate<Request> predicate) {
        failWhen = predicate;
        return this;
    }

    /** Injected faults fail with {@code errno} from now on (ENOSPC: a COW file on a full file system). */
    public synchronized FaultyDevice failWith(Errno errno) {
        injectedErrno = errno;
        return this;
    }

    /** The next {@link #refreshSize()} fails (fstat of the file or the size ioctl of the device). */
    public synchronized FaultyDevice failNextSizeQuery() {
        failNextSizeQuery = true;
        return this;
    }

    /** The next write stores only its first {@code keepSectors} sectors, then fails with EIO. */
    public synchronized FaultyDevice tearNextWrite(int keepSectors) {
        tearNextWriteSectors = keepSectors;
        return this;
    }

    /** The next write reports success and stores nothing (a lost write). */
    public synchronized FaultyDevice dropNextWrite() {
        dropNextWrite = true;
        return this;
    }

    /** The next write reports success and stores data with a few bytes flipped. */
    public synchronized FaultyDevice corruptNextWrite(Random random) {
        corruptNextWrite = random;
        return this;
    }

    /**
     * Puts a gate before the device that parks the requests {@code holds} matches (replacing
     * a gate there, which is opened); {@link Gate#open()} it to let everything through again.
     */
    public Gate hold(Predicate<Request> holds) {
        Gate g = new Gate(holds);
        Gate old = gate;
        gate = g;
        if (old != null) {
            old.open();
        }
        return g;
    }

    private void pass(Request request) throws java.io.InterruptedIOException {
        Gate g = gate;
        if (g != null) {
            g.pass(request);
        }
    }

    /**
     * Metadata maps from now on behave as real shared mappings of a file, as {@code FileDevice}'s
     * do: {@link MetadataMap#syncIsDurable()} ({@code msync(MS_SYNC)}: the synced range reaches
     * the device, then the device's cache is flushed, as one more flush request, but the file's
     * other dirty pages stay where they are) and {@link MetadataMap#flushWritesBack()} (this
     * device's flush writes back stores never synced).
     */
    public synchronized FaultyDevice mapsLikeFiles() {
        mapsLikeFiles = true;
        return this;
    }

    /**
     * From now on {@link #allocate} acts as a sparse file's fallocate: it goes through the gate and
     * the faults ({@link Op#ALLOCATE}; {@link #failWith} ENOSPC for a full file system), and the
     * ranges it reserved are listed by {@link #reservedRanges()}. Otherwise it reserves nothing, as
     * memory, and counts no operation (a background reservation must not shift a test's faults).
     */
    public synchronized FaultyDevice reservesBlocks() {
        if (reserved == null) {
            reserved = new ArrayList<>();
        }
        return this;
    }

    /** The ranges {@link #allocate} reserved so far, in order (empty unless {@link #reservesBlocks()}). */
    public synchronized List<Request> reservedRanges() {
        return reserved == null ? List.of() : List.copyOf(reserved);
    }

    /** From now on each read through {@link #buffered()} is recorded as it arrives, before the gate and faults. */
    public synchronized FaultyDevice recordsPageCacheReads() {
        if (pageCacheReads == null) {
            pageCacheReads = new ArrayList<>();
        }
        return this;
    }

    /** The page-cache reads recorded since the last call, in order (empty unless {@link #recordsPageCacheReads()}). */
    public synchronized List<PageCacheRead> takePageCacheReads() {
        if (pageCacheReads == null) {
            return List.of();
        }
        List<PageCacheRead> taken = List.copyOf(pageCacheReads);
        pageCacheReads.clear();
        return taken;
    }

    /**
     * From now on the page cache holds the reads through {@link #buffered()} that {@code holds}
     * matches: {@link Device#readIfCached} serves them (unless a {@link #hold gate} would park
     * them: they would wait), the others would wait. Null (the default): it holds none.
     */
    public synchronized FaultyDevice pageCacheHolds(Predicate<Request> holds) {
        pageCacheHolds = holds;
        return this;
    }

    /** {@link Device#readIfCached} calls on the page-cache view so far, served or not. */
    public synchronized long cachedReadTries() {
        return cachedReadTries;
    }

    /** The reads {@link Device#readIfCached} served (failed ones included: the fault applied). */
    public synchronized long cachedReadsServed() {
        return cachedReadsServed;
    }

    /** The thread the last read {@link Device#readIfCached} served ran on; null before one. */
    public String lastCachedReadThread() {
        return lastCachedReadThread;
    }

    /** Counts a try; whether the page cache holds {@code read} and no gate would park it. */
    private synchronized boolean cachedNow(Request read) {
        cachedReadTries++;
        Gate g = gate;
        if (pageCacheHolds == null || !pageCacheHolds.test(read) || g != null && g.wouldHold(read)) {
            return false;
        }
        cachedReadsServed++;
        lastCachedReadThread = Thread.currentThread().getName();
        return true;
    }

    private synchronized void recordPageCacheRead(long offsetBytes, long lengthBytes, int inProgress) {
        if (pageCacheReads != null) {
            pageCacheReads.add(new PageCacheRead(
                    offsetBytes, lengthBytes, Thread.currentThread().getName(), inProgress));
        }
    }

    /** Removes every pending fault. */
    public synchronized FaultyDevice heal() {
        java.util.Arrays.fill(countdown, -1);
        failAfterOps = -1;
        failWhen = null;
        tearNextWriteSectors = -1;
        dropNextWrite = false;
        corruptNextWrite = null;
        failNextSizeQuery = false;
        return this;
    }

    /**
     * The power goes now, before {@link #crash}: every request fails from now on (EIO), and
     * stores into metadata maps made from now on can never reach the media (the machine stopped
     * with the disk), whatever {@link #crash(Random)} writes back.
     */
    public synchronized void cutPower() {
        if (!powerCut) {
            powerCut = true;
            for (EmulatedMap map : maps) {
                map.freeze();
            }
        }
    }

    /**
     * Power loss: every write since the last completed flush is lost, page cache included. Faults
     * stay armed; the power is back ({@link #cutPower}).
     */
    public synchronized void crash() {
        cache.clear();
        pageCache.clear();
        powerBack();
    }

    private void powerBack() {
        powerCut = false;
        for (EmulatedMap map : maps) {
            map.frozen = null;
        }
    }

    /**
     * Power loss with a partly written-back cache: each unflushed write survives or not at
     * random, and a survivor may keep only a prefix of its sectors. Reproducible from the random.
     */
    public synchronized void crash(Random random) throws IOException {
        for (CachedWrite w : cache) {
            if (random.nextBoolean()) {
                long sectors = w.data().byteSize() / SECTOR;
                long keep = random.nextInt(4) == 0 ? random.nextLong(sectors + 1) : sectors;
                if (keep > 0) {
                    media.write(w.offsetBytes(), w.data().asSlice(0, keep * SECTOR));
                }
            }
        }
        cache.clear();
        // The kernel may have written back any of the dirty pages, in any order, the last one
        // perhaps torn; the page cache is newer than the device's cache where both hold a range.
        for (CachedWrite w : pageCache) {
            long end = w.offsetBytes() + w.data().byteSize();
            for (long at = w.offsetBytes(); at < end; ) {
                long next = Math.min(end, (at / PAGE + 1) * PAGE);
                if (random.nextBoolean()) {
                    long sectors = (next - at) / SECTOR;
                    long keep = random.nextInt(4) == 0 ? random.nextLong(sectors + 1) : sectors;
                    if (keep > 0) {
                        media.write(at, w.data().asSlice(at - w.offsetBytes(), keep * SECTOR));
                    }
                }
                at = next;
            }
        }
        pageCache.clear();
        // A real mmap may have written back stores that were never msynced: some sectors land,
        // with the newest contents.
        for (EmulatedMap map : maps) {
            map.writeBackSomeDirtySectors(random);
        }
        powerBack();
        media.flush();
    }

    /** Writes completed but not yet flushed, page cache included. */
    public synchronized int unflushedWrites() {
        return cache.size() + pageCache.size();
    }

    /** Writes through {@link #buffered()} not yet written back to the device's cache. */
    public synchronized int dirtyPageCacheWrites() {
        return pageCache.size();
    }

    public synchronized long flushes() {
        return flushes;
    }

    public synchronized long injectedFaults() {
        return injectedFaults;
    }

    public Device media() {
        return media;
    }

    /**
     * A copy of the media taken under this device's lock, so between two of its writes to them:
     * what a power cut could leave. Reading {@link #media()} itself while another thread flushes
     * (a commit round the engine runs on its own) could see a write half done.
     */
    public synchronized MemoryDevice copyOfMedia() throws IOException {
        MemoryDevice copy = new MemoryDevice("copy of " + media, media.sizeBytes());
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment bytes = scratch.allocate(media.sizeBytes(), media.bufferAlignmentBytes());
            media.read(0, bytes);
            copy.write(0, bytes);
        }
        return copy;
    }

    // ---- metadata maps ---------------------------------------------------------------------

    /**
     * An emulated mmap: a private copy of the range; {@link MetadataMap#sync} writes the synced
     * range through this device's write path (into the volatile cache, subject to faults), and
     * {@link #crash(Random)} may write back stores that were never synced, as the kernel's
     * writeback of a dirty shared mapping can.
     */
    @Override
    public synchronized MetadataMap mapMetadata(long offsetBytes, long lengthBytes) throws IOException {
        Device.checkRequest(this, "mapMetadata", offsetBytes, lengthBytes, null);
        MemorySegment copy = arena.allocate(lengthBytes, 4096);
        readNow(offsetBytes, copy);
        MemorySegment synced = arena.allocate(lengthBytes, 8);
        synced.copyFrom(copy);
        EmulatedMap map = new EmulatedMap(offsetBytes, copy, synced);
        maps.add(map);
        return map;
    }

    private final class EmulatedMap implements MetadataMap {
        private final long deviceOffset;
        private final MemorySegment view;
        /** What the device has been given for this range (by sync or by emulated writeback). */
        private final MemorySegment synced;

        private boolean closed;
        /** The stores as they were when the power went ({@link #cutPower}), or null. */
        private MemorySegment frozen;

        void freeze() {
            frozen = arena.allocate(view.byteSize(), 8);
            frozen.copyFrom(view);
        }

        /** The stores that can still reach the media: all of them, or those before the power went. */
        private MemorySegment stores() {
            return frozen != null ? frozen : view;
        }

        EmulatedMap(long deviceOffset, MemorySegment view, MemorySegment synced) {
            this.deviceOffset = deviceOffset;
            this.view = view;
            this.synced = synced;
        }

        @Override
        public MemorySegment segment() {
            return view;
        }

        @Override
        public void sync(long offsetBytes, long lengthBytes) throws IOException {
            java.util.Objects.checkFromIndexSize(offsetBytes, lengthBytes, view.byteSize());
            int block = logicalBlockBytes();
            long from = offsetBytes - offsetBytes % block;
            long to = Math.min(view.byteSize(), (offsetBytes + lengthBytes + block - 1) / block * block);
            pass(new Request(Op.WRITE, deviceOffset + from, to - from));
            boolean durable;
            synchronized (FaultyDevice.this) {
                writeNow(deviceOffset + from, view.asSlice(from, to - from), false);
                MemorySegment.copy(view, from, synced, from, to - from);
                durable = mapsLikeFiles;
            }
            if (durable) {
                // msync(MS_SYNC): fdatasync of the range, the device cache flush included.
                Request flush = new Request(Op.FLUSH, 0, 0);
                pass(flush);
                flushDeviceCacheNow(flush);
            }
        }

        @Override
        public boolean syncIsDurable() {
            synchronized (FaultyDevice.this) {
                return mapsLikeFiles;
            }
        }

        @Override
        public boolean flushWritesBack() {
            synchronized (FaultyDevice.this) {
                return mapsLikeFiles;
            }
        }

        /** A flush of the file writes back stores never synced (a real mapping's dirty pages). */
        void writeBackDirtySectors() throws IOException {
            if (closed) {
                return;
            }
            for (long at = 0; at < view.byteSize(); at += SECTOR) {
                MemorySegment now = view.asSlice(at, SECTOR);
                if (now.mismatch(synced.asSlice(at, SECTOR)) >= 0) {
                    media.write(deviceOffset + at, now);
                    MemorySegment.copy(view, at, synced, at, SECTOR);
                }
            }
        }

        void writeBackSomeDirtySectors(Random random) throws IOException {
            if (closed) {
                return;
            }
            MemorySegment stores = stores();
            for (long at = 0; at < view.byteSize(); at += SECTOR) {
                MemorySegment now = stores.asSlice(at, SECTOR);
                if (now.mismatch(synced.asSlice(at, SECTOR)) >= 0 && random.nextBoolean()) {
                    media.write(deviceOffset + at, now);
                }
            }
        }

        /**
         * munmap: stores never synced stay dirty pages of the file, which a flush writes back, a
         * crash loses or keeps in part, and the next map of the range reads.
         */
        @Override
        public void close() {
            synchronized (FaultyDevice.this) {
                closed = true;
                maps.remove(this);
                MemorySegment stores = stores();
                long end = view.byteSize();
                for (long at = 0; at < end; at += SECTOR) {
                    long from = at;
                    while (at < end && stores.asSlice(at, SECTOR).mismatch(synced.asSlice(at, SECTOR)) >= 0) {
                        at += SECTOR;
                    }
                    if (at > from) {
                        cache(pageCache, deviceOffset + from, stores.asSlice(from, at - from));
                    }
                }
            }
        }
    }

    // ---- Device ------------------------------------------------------------------------------

    @Override
    public String name() {
        return "faulty(" + media.name() + ")";
    }

    @Override
    public long sizeBytes() {
        return media.sizeBytes();
    }

    /** The size as the media reports it, unless {@link #failNextSizeQuery} armed a failure. */
    @Override
    public synchronized long refreshSize() throws IOException {
        if (failNextSizeQuery) {
            failNextSizeQuery = false;
            throw injected("fstat", -1, -1);
        }
        return Device.super.refreshSize();
    }

    @Override
    public int logicalBlockBytes() {
        return media.logicalBlockBytes();
    }

    @Override
    public int bufferAlignmentBytes() {
        return media.bufferAlignmentBytes();
    }

    @Override
    public void read(long offsetBytes, MemorySegment dst) throws IOException {
        Device.checkRequest(this, "read", offsetBytes, dst.byteSize(), dst);
        pass(new Request(Op.READ, offsetBytes, dst.byteSize()));
        readNow(offsetBytes, dst);
    }

    /** A read past the gate, on either path: the page cache is newer than the device's cache. */
    private synchronized void readNow(long offsetBytes, MemorySegment dst) throws IOException {
        maybeFail(new Request(Op.READ, offsetBytes, dst.byteSize()));
        media.read(offsetBytes, dst);
        overlay(cache, offsetBytes, dst);
        overlay(pageCache, offsetBytes, dst);
    }

    private static void overlay(List<CachedWrite> writes, long offsetBytes, MemorySegment dst) {
        long end = offsetBytes + dst.byteSize();
        for (CachedWrite w : writes) {
            long from = Math.max(offsetBytes, w.offsetBytes());
            long to = Math.min(end, w.offsetBytes() + w.data().byteSize());
            if (from < to) {
                MemorySegment.copy(w.data(), from - w.offsetBytes(), dst, from - offsetBytes, to - from);
            }
        }
    }

    @Override
    public void write(long offsetBytes, MemorySegment src) throws IOException {
        Device.checkRequest(this, "write", offsetBytes, src.byteSize(), src);
        pass(new Request(Op.WRITE, offsetBytes, src.byteSize()));
        writeNow(offsetBytes, src, false);
    }

    /** A write past the gate, into the page cache or (bypassing it) into the device's cache. */
    private synchronized void writeNow(long offsetBytes, MemorySegment src, boolean throughPageCache)
            throws IOException {
        List<CachedWrite> into = throughPageCache ? pageCache : cache;
        if (tearNextWriteSectors >= 0) {
            long keep = Math.min((long) tearNextWriteSectors * SECTOR, src.byteSize());
            tearNextWriteSectors = -1;
            countOp();
            if (!throughPageCache) {
                writeBackPages(offsetBytes, src.byteSize());
            }
            if (keep > 0) {
                cache(into, offsetBytes, src.asSlice(0, keep));
            }
            throw injected("pwrite", offsetBytes, src.byteSize());
        }
        maybeFail(new Request(Op.WRITE, offsetBytes, src.byteSize()));
        if (!throughPageCache) {
            writeBackPages(offsetBytes, src.byteSize());
        }
        if (dropNextWrite) {
            dropNextWrite = false;
            return;
        }
        MemorySegment data = cache(into, offsetBytes, src);
        if (corruptNextWrite != null) {
            Random r = corruptNextWrite;
            corruptNextWrite = null;
            for (int i = 0; i < 3; i++) {
                long at = r.nextLong(data.byteSize());
                data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte)
                        (data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at) ^ (1 + r.nextInt(255))));
            }
        }
    }

    private MemorySegment cache(List<CachedWrite> into, long offsetBytes, MemorySegment src) {
        MemorySegment copy = arena.allocate(src.byteSize(), 8);
        copy.copyFrom(src);
        into.add(new CachedWrite(offsetBytes, copy));
        return copy;
    }

    /**
     * I/O that bypasses the page cache over {@code [offsetBytes, +lengthBytes)}: the dirty pages
     * it covers are written back into the device's cache first (and dropped from the page cache),
     * as the kernel does before direct I/O, hole punching or zeroing a range.
     */
    private void writeBackPages(long offsetBytes, long lengthBytes) {
        for (var it = pageCache.iterator(); it.hasNext(); ) {
            CachedWrite w = it.next();
            if (w.offsetBytes() < offsetBytes + lengthBytes
                    && offsetBytes < w.offsetBytes() + w.data().byteSize()) {
                cache.add(w);
                it.remove();
            }
        }
    }

    @Override
    public void flush() throws IOException {
        Request request = new Request(Op.FLUSH, 0, 0);
        pass(request);
        flushNow(request);
    }

    /** fdatasync of the file: its dirty pages (mapped ones too when they are real maps), then the device cache. */
    private synchronized void flushNow(Request request) throws IOException {
        maybeFail(request);
        cache.addAll(pageCache);
        pageCache.clear();
        writeBackCache();
        if (mapsLikeFiles) {
            for (EmulatedMap map : maps) {
                map.writeBackDirtySectors();
            }
        }
        media.flush();
        flushes++;
    }

    /** The device's cache flush alone (msync of a range, after its write): the page cache stays dirty. */
    private synchronized void flushDeviceCacheNow(Request request) throws IOException {
        maybeFail(request);
        writeBackCache();
        media.flush();
        flushes++;
    }

    private void writeBackCache() throws IOException {
        for (CachedWrite w : cache) {
            media.write(w.offsetBytes(), w.data());
        }
        cache.clear();
    }

    @Override
    public void discard(long offsetBytes, long lengthBytes) throws IOException {
        writeZeroesAs(Op.DISCARD, offsetBytes, lengthBytes);
    }

    @Override
    public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
        writeZeroesAs(Op.WRITE_ZEROES, offsetBytes, lengthBytes);
    }

    private void writeZeroesAs(Op op, long offsetBytes, long lengthBytes) throws IOException {
        Device.checkRequest(this, op.name().toLowerCase(java.util.Locale.ROOT), offsetBytes, lengthBytes, null);
        Request request = new Request(op, offsetBytes, lengthBytes);
        pass(request);
        writeZeroesNow(request);
    }

    private synchronized void writeZeroesNow(Request request) throws IOException {
        long offsetBytes = request.offsetBytes();
        long lengthBytes = request.lengthBytes();
        maybeFail(request);
        if (lengthBytes > 0) {
            writeBackPages(offsetBytes, lengthBytes);
            cache.add(new CachedWrite(offsetBytes, arena.allocate(lengthBytes, 8)));
        }
    }

    @Override
    public boolean allocate(long offsetBytes, long lengthBytes) throws IOException {
        synchronized (this) {
            if (reserved == null) {
                return media.allocate(offsetBytes, lengthBytes);
            }
        }
        Device.checkRequest(this, "allocate", offsetBytes, lengthBytes, null);
        Request request = new Request(Op.ALLOCATE, offsetBytes, lengthBytes);
        pass(request);
        synchronized (this) {
            maybeFail(request);
            reserved.add(request);
        }
        return true;
    }

    /** The page-cache view: one per device, owned by it. */
    @Override
    public Device buffered() {
        return pageCacheView;
    }

    @Override
    public synchronized void close() throws IOException {
        cache.clear();
        pageCache.clear();
        media.close();
    }

    /**
     * {@link #buffered()}: reads and writes through the page cache (the same faults and gate as
     * the device's own I/O); flush, discard, zeroes and maps are the device's.
     */
    private final class PageCacheView implements Device {
        @Override
        public String name() {
            return FaultyDevice.this.name();
        }

        @Override
        public long sizeBytes() {
            return FaultyDevice.this.sizeBytes();
        }

        @Override
        public long refreshSize() throws IOException {
            return FaultyDevice.this.refreshSize();
        }

        @Override
        public int logicalBlockBytes() {
            return FaultyDevice.this.logicalBlockBytes();
        }

        @Override
        public int bufferAlignmentBytes() {
            return 1;
        }

        @Override
        public void read(long offsetBytes, MemorySegment dst) throws IOException {
            read(offsetBytes, dst, false);
        }

        /** Served when the test said the page cache holds it ({@link #pageCacheHolds}); faults apply. */
        @Override
        public boolean readIfCached(long offsetBytes, MemorySegment dst) throws IOException {
            return read(offsetBytes, dst, true);
        }

        @Override
        public boolean read(long offsetBytes, MemorySegment dst, boolean nowait) throws IOException {
            Device.checkRequest(this, "read", offsetBytes, dst.byteSize(), dst);
            Request request = new Request(Op.READ, offsetBytes, dst.byteSize());
            if (nowait && !cachedNow(request)) {
                return false;
            }
            int inProgress = pageCacheReadsInProgress.incrementAndGet();
            try {
                recordPageCacheRead(offsetBytes, dst.byteSize(), inProgress);
                if (!nowait) {
                    pass(request);
                }
                readNow(offsetBytes, dst);
                return true;
            } finally {
                pageCacheReadsInProgress.decrementAndGet();
            }
        }

        @Override
        public void write(long offsetBytes, MemorySegment src) throws IOException {
            Device.checkRequest(this, "write", offsetBytes, src.byteSize(), src);
            pass(new Request(Op.WRITE, offsetBytes, src.byteSize()));
            writeNow(offsetBytes, src, true);
        }

        @Override
        public void flush() throws IOException {
            FaultyDevice.this.flush();
        }

        @Override
        public void discard(long offsetBytes, long lengthBytes) throws IOException {
            FaultyDevice.this.discard(offsetBytes, lengthBytes);
        }

        @Override
        public void writeZeroes(long offsetBytes, long lengthBytes) throws IOException {
            FaultyDevice.this.writeZeroes(offsetBytes, lengthBytes);
        }

        @Override
        public MetadataMap mapMetadata(long offsetBytes, long lengthBytes) throws IOException {
            return FaultyDevice.this.mapMetadata(offsetBytes, lengthBytes);
        }

        @Override
        public boolean allocate(long offsetBytes, long lengthBytes) throws IOException {
            return FaultyDevice.this.allocate(offsetBytes, lengthBytes);
        }

        @Override
        public Device buffered() {
            return this;
        }

        /** The device owns this view. */
        @Override
        public void close() {}

        @Override
        public String toString() {
            return FaultyDevice.this.name() + " through its page cache";
        }
    }

    private void maybeFail(Request request) throws ErrnoException {
        countOp();
        boolean fail = powerCut;
        int i = request.op().ordinal();
        if (countdown[i] > 0 && --countdown[i] == 0) {
            countdown[i] = -1;
            fail = true;
        }
        if (failAfterOps >= 0) {
            if (failAfterOps == 0) {
                fail = true;
            } else {
                failAfterOps--;
            }
        }
        if (failWhen != null && failWhen.test(request)) {
            fail = true;
        }
        if (fail) {
            String call = switch (request.op()) {
                case READ -> "pread";
                case WRITE -> "pwrite";
                case FLUSH -> "fdatasync";
                case DISCARD -> "discard";
                case WRITE_ZEROES -> "writeZeroes";
                case ALLOCATE -> "fallocate";
            };
            throw injected(
                    call,
                    request.op() == Op.FLUSH ? -1 : request.offsetBytes(),
                    request.op() == Op.FLUSH ? -1 : request.lengthBytes());
        }
    }

    private void countOp() {
        operations++;
    }

    private ErrnoException injected(String call, long offsetBytes, long lengthBytes) {
        injectedFaults++;
        return new ErrnoException(
                call, injectedErrno.value(), Path.of(name()), offsetBytes, lengthBytes, "injected fault");
    }

    public synchronized long operations() {
        return operations;
    }
}
