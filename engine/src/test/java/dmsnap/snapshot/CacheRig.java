package dmsnap.snapshot;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.persistent.CowInspector;
import dmsnap.store.persistent.PersistentExceptionStore;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.IoRequest;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;

/**
 * An origin ({@code snapshot-origin}) and one persistent snapshot of it in a given cache mode,
 * over {@link FaultyDevice}s on memory (a volatile write cache each: what was not flushed is
 * lost at a power cut), with the commit interval's tasks run by hand and every request of both
 * devices logged in one order. Every sector of the base and of whatever is written holds a tag:
 * 8-byte words {@code tag << 32 | sector}, the base's own tag being 0.
 */
final class CacheRig implements AutoCloseable {
    static final int SECTOR = 512;

    /** The commit interval, by hand: tasks wait here until a test runs them. */
    static final class ManualTimer implements CommitTimer {
        private final List<Runnable> tasks = Collections.synchronizedList(new ArrayList<>());

        @Override
        public void schedule(Runnable task) {
            tasks.add(task);
        }

        int scheduled() {
            return tasks.size();
        }

        /** Runs the tasks scheduled so far, as if the interval had passed. */
        void intervalPasses() {
            List<Runnable> due;
            synchronized (tasks) {
                due = new ArrayList<>(tasks);
                tasks.clear();
            }
            due.forEach(Runnable::run);
        }
    }

    /** A request as both devices' log has it: {@code device} is the file name. */
    record Logged(String device, FaultyDevice.Request request) {}

    final long sectors;
    final long chunkSectors;
    final FaultyDevice base;
    final FaultyDevice cow;
    final ManualTimer timer = new ManualTimer();
    final List<Logged> log = Collections.synchronizedList(new ArrayList<>());
    final DeviceManager dm;
    final Arena arena = Arena.ofShared();
    final String snapshotTable;
    private final Map<String, Predicate<FaultyDevice.Request>> failing = new ConcurrentHashMap<>();
    /** Keeps the COW open when the snapshot is removed, so that its media can still be read. */
    private final BackingDevices.Handle cowHold;
    /** A copier this rig made for itself and closes; null when the test shares one. */
    private final ChunkCopier ownCopier;

    /** The same with a {@code P} store and a copier of its own, closed with the rig. */
    CacheRig(Path dir, long sectors, long cowBytes, long chunkSectors, CacheMode mode) throws Exception {
        this(dir, sectors, cowBytes, chunkSectors, mode, new ChunkCopier(2, 1 << 20), "P", true);
    }

    /**
     * @param dir          where the placeholder files are (the devices are named by them)
     * @param sectors      the origin's size
     * @param cowBytes     the COW's size
     * @param chunkSectors the snapshot's chunk size
     * @param mode         the cache mode of both devices
     * @param copier       the chunk copier (shared by a test's rigs)
     */
    CacheRig(Path dir, long sectors, long cowBytes, long chunkSectors, CacheMode mode, ChunkCopier copier)
            throws Exception {
        this(dir, sectors, cowBytes, chunkSectors, mode, copier, "P");
    }

    /** The same, the snapshot's store {@code store} ({@code P} or {@code PO}). */
    CacheRig(Path dir, long sectors, long cowBytes, long chunkSectors, CacheMode mode, ChunkCopier copier, String store)
            throws Exception {
        this(dir, sectors, cowBytes, chunkSectors, mode, copier, store, false);
    }

    private CacheRig(
            Path dir,
            long sectors,
            long cowBytes,
            long chunkSectors,
            CacheMode mode,
            ChunkCopier copier,
            String store,
            boolean ownsCopier)
            throws Exception {
        this.sectors = sectors;
        this.chunkSectors = chunkSectors;
        this.ownCopier = ownsCopier ? copier : null;
        Path basePath = Files.write(dir.resolve("base.img"), new byte[0]);
        Path cowPath = Files.write(dir.resolve("cow.img"), new byte[0]);
        MemoryDevice baseMedia = new MemoryDevice("base", sectors * SECTOR);
        MemorySegment all = arena.allocate(sectors * SECTOR, 8);
        for (long s = 0; s < sectors; s++) {
            fill(all.asSlice(s * SECTOR, SECTOR), 0, s);
        }
        baseMedia.write(0, all);
        base = logged("base.img", new FaultyDevice(baseMedia));
        // Metadata maps as FileDevice's: msync(MS_SYNC) durable for its range only, so that
        // writeback's page-cache data is durable only through a flush of the file.
        cow = logged("cow.img", new FaultyDevice(new MemoryDevice("cow", cowBytes)).mapsLikeFiles());
        BackingDevices devices = new BackingDevices(real -> {
            String name = real.getFileName().toString();
            return name.equals("base.img") ? base : cow;
        });
        cowHold = devices.open(cowPath.toString(), BackingDevices.Access.WRITE);
        dm = new DeviceManager(
                SnapshotTargets.register(
                        TargetTypes.withBasicTargets(),
                        new Registry(),
                        copier,
                        CommitObserver.NONE,
                        MergeSettings.DEFAULTS,
                        timer),
                devices,
                mode);
        dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + basePath));
        snapshotTable = "0 " + sectors + " snapshot " + basePath + " " + cowPath + " " + store + " " + chunkSectors;
        dm.get("origin").suspend();
        try {
            dm.create("snap", null, TableParser.parse(snapshotTable));
        } finally {
            dm.get("origin").resume();
        }
    }

    private FaultyDevice logged(String name, FaultyDevice device) {
        device.failWhen(r -> {
            if (failing.getOrDefault(name, x -> false).test(r)) {
                return true;
            }
            log.add(new Logged(name, r));
            return false;
        });
        return device;
    }

    /** Requests of {@code name} matching {@code which} fail from now on (null: none). */
    void fail(String name, Predicate<FaultyDevice.Request> which) {
        if (which == null) {
            failing.remove(name);
        } else {
            failing.put(name, which);
        }
    }

    /** Fills {@code sector} (a 512-byte slice) with {@code tag}'s words for sector number {@code s}. */
    static void fill(MemorySegment sector, long tag, long s) {
        for (long at = 0; at < SECTOR; at += 8) {
            sector.set(ValueLayout.JAVA_LONG_UNALIGNED, at, tag << 32 | s);
        }
    }

    /**
     * The tag a 512-byte slice holds for sector {@code s}; fails on anything else (garbage, a
     * torn sector, another sector's data).
     */
    static long tagOf(MemorySegment sector, long s, String where) {
        long first = sector.get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
        for (long at = 8; at < SECTOR; at += 8) {
            if (sector.get(ValueLayout.JAVA_LONG_UNALIGNED, at) != first) {
                throw new AssertionError(where + ": sector " + s + " is not one write's content");
            }
        }
        if ((first & 0xffffffffL) != s) {
            throw new AssertionError(where + ": sector " + s + " holds the data of sector " + (first & 0xffffffffL));
        }
        return first >>> 32;
    }

    MappedDevice device(String name) throws Exception {
        return dm.get(name);
    }

    /** Writes {@code count} sectors from {@code sector} of {@code device}, tagged {@code tag}. */
    void write(String device, long sector, long count, long tag, boolean fua) throws Exception {
        MemorySegment data = arena.allocate(count * SECTOR, 4096);
        for (long i = 0; i < count; i++) {
            fill(data.asSlice(i * SECTOR, SECTOR), tag, sector + i);
        }
        dm.get(device).submit(IoRequest.write(sector, data, fua));
    }

    void flush(String device) throws Exception {
        dm.get(device).submit(IoRequest.flush());
    }

    /** The tags of {@code device}'s sectors, read through the engine. */
    long[] read(String device) throws Exception {
        MemorySegment data = arena.allocate(sectors * SECTOR, 4096);
        dm.get(device).submit(IoRequest.read(0, data));
        long[] tags = new long[(int) sectors];
        for (int s = 0; s < sectors; s++) {
            tags[s] = tagOf(data.asSlice((long) s * SECTOR, SECTOR), s, device);
        }
        return tags;
    }

    /** The COW as it would load now from what its media hold (only flushed writes): origin chunk to COW chunk. */
    Map<Long, Long> durableRemaps() throws IOException {
        return remapsOf(cow.copyOfMedia());
    }

    /**
     * {@code dmsnap cow check} of the COW's media: fails with its problems unless it is clean, and
     * unless the exceptions it reads are those the store loads.
     */
    void checkCowMedia(String what) throws IOException {
        CowInspector.Report report = CowInspector.inspect(cow.copyOfMedia(), SECTOR, sectors);
        if (!report.clean()) {
            throw new AssertionError(what + ": cow check finds " + report.problems());
        }
        if (!report.notes().isEmpty()) {
            throw new AssertionError(what + ": cow check says " + report.notes());
        }
        if (!new TreeMap<>(report.remaps()).equals(durableRemaps())) {
            throw new AssertionError(what + ": cow check reads " + new TreeMap<>(report.remaps()) + ", the store loads "
                    + durableRemaps());
        }
    }

    /** Whether the COW's media load as an invalidated snapshot (header valid=0). */
    boolean durablyInvalid() throws IOException {
        try (PersistentExceptionStore s =
                new PersistentExceptionStore(cow.copyOfMedia(), new ChunkSize(chunkSectors), false, 512)) {
            return s.load((o, n) -> {}) == LoadResult.INVALID;
        }
    }

    private Map<Long, Long> remapsOf(MemoryDevice cowCopy) throws IOException {
        Map<Long, Long> remaps = new TreeMap<>();
        try (PersistentExceptionStore s =
                new PersistentExceptionStore(cowCopy, new ChunkSize(chunkSectors), false, 512)) {
            if (s.load((o, n) -> remaps.put(o, n)) != LoadResult.VALID) {
                throw new AssertionError("the COW loads as invalid");
            }
        }
        return remaps;
    }

    /**
     * What a fresh activation would show after a power cut: the snapshot's sectors from the
     * COW's and the base's media (what reached them), as tags.
     */
    long[] snapshotAfterPowerCut() throws IOException {
        MemoryDevice cowCopy = cow.copyOfMedia();
        Map<Long, Long> remaps = remapsOf(cowCopy);
        MemoryDevice baseMedia = base.copyOfMedia();
        long[] tags = new long[(int) sectors];
        for (int s = 0; s < sectors; s++) {
            long chunk = s / chunkSectors;
            Long mapped = remaps.get(chunk);
            long at = mapped == null ? -1 : (mapped * chunkSectors + s % chunkSectors) * SECTOR;
            MemorySegment sector = mapped == null
                    ? baseMedia.contents().asSlice((long) s * SECTOR, SECTOR)
                    : cowCopy.contents().asSlice(at, SECTOR);
            try {
                tags[s] = tagOf(sector, s, "the snapshot after the power cut");
            } catch (AssertionError e) {
                throw new AssertionError(
                        e.getMessage()
                                + (mapped == null
                                        ? " (read from the base)"
                                        : " (COW chunk " + mapped + "; " + history("cow.img", at, SECTOR) + ")"),
                        e);
            }
        }
        return tags;
    }

    /** The origin's sectors on the base's media, as tags. */
    long[] originAfterPowerCut() throws IOException {
        MemoryDevice baseMedia = base.copyOfMedia();
        long[] tags = new long[(int) sectors];
        for (int s = 0; s < sectors; s++) {
            tags[s] =
                    tagOf(baseMedia.contents().asSlice((long) s * SECTOR, SECTOR), s, "the origin after the power cut");
        }
        return tags;
    }

    /**
     * What {@link #log} holds for {@code device}'s bytes {@code [offset, offset + length)}: each
     * request that touched them, its index in the log and the device's flushes before it, for a
     * failure's message (an interleaving that is rare needs its history in the report).
     */
    String history(String device, long offset, long length) {
        StringBuilder out = new StringBuilder("requests on those bytes, as #index op after n flushes:");
        int flushes = 0;
        int shown = 0;
        synchronized (log) {
            for (int i = 0; i < log.size(); i++) {
                Logged l = log.get(i);
                if (!l.device().equals(device)) {
                    continue;
                }
                FaultyDevice.Request r = l.request();
                if (r.op() == FaultyDevice.Op.FLUSH) {
                    flushes++;
                } else if (r.offsetBytes() < offset + length && offset < r.offsetBytes() + r.lengthBytes()) {
                    if (shown++ < 40) {
                        out.append(" #")
                                .append(i)
                                .append(' ')
                                .append(r.op())
                                .append(' ')
                                .append(r.offsetBytes())
                                .append('+')
                                .append(r.lengthBytes())
                                .append(" after ")
                                .append(flushes);
                    }
                }
            }
            out.append("; ")
                    .append(flushes)
                    .append(" flushes of ")
                    .append(device)
                    .append(" in all");
        }
        return out.toString();
    }

    /** Index in {@link #log} of the last request of {@code device} matching {@code which}, or -1. */
    int lastIndex(String device, Predicate<FaultyDevice.Request> which) {
        synchronized (log) {
            for (int i = log.size() - 1; i >= 0; i--) {
                if (log.get(i).device().equals(device) && which.test(log.get(i).request())) {
                    return i;
                }
            }
        }
        return -1;
    }

    /** Removes the devices (which commits what is deferred); errors of a rig whose power was cut are expected. */
    @Override
    public void close() {
        for (String name : List.of("snap", "origin")) {
            try {
                if (dm.find(name) != null) {
                    dm.remove(name, true);
                }
            } catch (Exception | AssertionError e) {
                // A device whose I/O fails on purpose cannot always be removed cleanly.
            }
        }
        try {
            cowHold.close();
        } catch (IOException e) {
            // Memory: nothing to report.
        }
        arena.close();
        if (ownCopier != null) {
            try {
                ownCopier.close();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
