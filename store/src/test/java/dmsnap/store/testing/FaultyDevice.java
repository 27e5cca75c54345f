package dmsnap.store.testing;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.device.Device;
import dmsnap.store.device.MetadataMap;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Predicate;

/**
 * A device with a volatile write cache and injectable faults, over a "media" device that holds
 * what survived. Completed writes sit in the cache (reads see them) until {@link #flush()} moves
 * them to the media; {@link #crash()} loses every write since the last completed flush, and
 * {@link #crash(Random)} keeps a random subset, possibly torn at a sector boundary, as a disk
 * whose cache was partly written back.
 *
 * <p>Faults, each consumed when it fires: fail the n-th read/write/flush from now, fail every
 * operation after n more, fail requests matching a predicate, tear the next write (its first k
 * sectors land, then EIO), drop the next write silently, corrupt the next write. Injected
 * failures are {@link ErrnoException}s with EIO (or the errno set by {@link #failWith}) and the
 * detail "injected fault".
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
        WRITE_ZEROES
    }

    /** A request as faults see it; lengthBytes is 0 for a flush. */
    public record Request(Op op, long offsetBytes, long lengthBytes) {}

    private record CachedWrite(long offsetBytes, MemorySegment data) {}

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

    private final Device media;
    private final Arena arena = Arena.ofAuto();
    private final List<CachedWrite> cache = new ArrayList<>();
    private final List<EmulatedMap> maps = new ArrayList<>();
    private final long[] countdown = {-1, -1, -1, -1, -1};
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

    /** Power loss: every write since the last completed flush is lost. Faults stay armed. */
    public synchronized void crash() {
        cache.clear();
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
        // A real mmap may have written back stores that were never msynced: some sectors land,
        // with the newest contents.
        for (EmulatedMap map : maps) {
            map.writeBackSomeDirtySectors(random);
        }
        media.flush();
    }

    /** Writes completed but not yet flushed. */
    public synchronized int unflushedWrites() {
        return cache.size();
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
            synchronized (FaultyDevice.this) {
                writeNow(deviceOffset + from, view.asSlice(from, to - from));
                MemorySegment.copy(view, from, synced, from, to - from);
            }
        }

        void writeBackSomeDirtySectors(Random random) throws IOException {
            if (closed) {
                return;
            }
            for (long at = 0; at < view.byteSize(); at += SECTOR) {
                MemorySegment now = view.asSlice(at, SECTOR);
                if (now.mismatch(synced.asSlice(at, SECTOR)) >= 0 && random.nextBoolean()) {
                    media.write(deviceOffset + at, now);
                }
            }
        }

        @Override
        public void close() {
            synchronized (FaultyDevice.this) {
                closed = true;
                maps.remove(this);
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

    /** A read past the gate. */
    private synchronized void readNow(long offsetBytes, MemorySegment dst) throws IOException {
        maybeFail(new Request(Op.READ, offsetBytes, dst.byteSize()));
        media.read(offsetBytes, dst);
        long end = offsetBytes + dst.byteSize();
        for (CachedWrite w : cache) {
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
        writeNow(offsetBytes, src);
    }

    /** A write past the gate. */
    private synchronized void writeNow(long offsetBytes, MemorySegment src) throws IOException {
        if (tearNextWriteSectors >= 0) {
            long keep = Math.min((long) tearNextWriteSectors * SECTOR, src.byteSize());
            tearNextWriteSectors = -1;
            countOp();
            if (keep > 0) {
                cache(offsetBytes, src.asSlice(0, keep));
            }
            throw injected("pwrite", offsetBytes, src.byteSize());
        }
        maybeFail(new Request(Op.WRITE, offsetBytes, src.byteSize()));
        if (dropNextWrite) {
            dropNextWrite = false;
            return;
        }
        MemorySegment data = cache(offsetBytes, src);
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

    private MemorySegment cache(long offsetBytes, MemorySegment src) {
        MemorySegment copy = arena.allocate(src.byteSize(), 8);
        copy.copyFrom(src);
        cache.add(new CachedWrite(offsetBytes, copy));
        return copy;
    }

    @Override
    public void flush() throws IOException {
        Request request = new Request(Op.FLUSH, 0, 0);
        pass(request);
        flushNow(request);
    }

    private synchronized void flushNow(Request request) throws IOException {
        maybeFail(request);
        for (CachedWrite w : cache) {
            media.write(w.offsetBytes(), w.data());
        }
        cache.clear();
        media.flush();
        flushes++;
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
            cache.add(new CachedWrite(offsetBytes, arena.allocate(lengthBytes, 8)));
        }
    }

    @Override
    public synchronized void close() throws IOException {
        cache.clear();
        media.close();
    }

    private void maybeFail(Request request) throws ErrnoException {
        countOp();
        boolean fail = false;
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
