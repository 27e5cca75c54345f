package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.ReferenceSnapshotModel;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;

/**
 * An origin with four snapshots and a bystander device, over files whose faults a test switches
 * on and off, with a model of what every device must read:
 * <ul>
 *   <li>{@code origin}: snapshot-origin over {@code base.img} (4 MiB);</li>
 *   <li>{@code victim}: the snapshot a test breaks ({@code P 8} unless told otherwise);</li>
 *   <li>{@code other} ({@code P 8}), {@code po} ({@code PO 16}), {@code temp} ({@code N 8}): the
 *       snapshots that must not notice (same and different chunk sizes, all three stores);</li>
 *   <li>{@code lin}: linear over {@code plain.img}, another export with nothing to do with them.</li>
 * </ul>
 * Every file is a {@link FaultyDevice} over a buffered file (its faults and the requests that
 * passed are in {@link #faults}), except those named in {@code realFiles}: those are plain
 * {@link FileDevice}s (O_DIRECT, mmapped metadata), for faults of the real file (truncation, a
 * full file system).
 */
final class FaultRig implements AutoCloseable {
    static final long SECTORS = 8192;
    static final long LIN_SECTORS = 2048;
    static final int CHUNK_BYTES = 4096;
    static final List<String> BYSTANDERS = List.of("other", "po", "temp");

    final Path dir;
    final Path base;
    final Path victimCow;
    final Map<String, Faults> faults = new ConcurrentHashMap<>();
    final List<String> invalidations = new CopyOnWriteArrayList<>();
    final ChunkCopier copier = new ChunkCopier(4, 1 << 20);
    final DeviceManager dm;
    final ReferenceSnapshotModel model;
    final byte[] lin;
    final String victimTable;

    /**
     * The faults of one file: requests {@link #fail} matches fail (with the device's errno), the
     * others pass and are recorded in order.
     */
    static final class Faults implements Predicate<FaultyDevice.Request> {
        private volatile Predicate<FaultyDevice.Request> failing = r -> false;
        private final List<FaultyDevice.Request> passed = Collections.synchronizedList(new ArrayList<>());
        volatile FaultyDevice device;

        void fail(Predicate<FaultyDevice.Request> which) {
            failing = which;
        }

        void heal() {
            failing = r -> false;
        }

        @Override
        public boolean test(FaultyDevice.Request r) {
            if (failing.test(r)) {
                return true;
            }
            passed.add(r);
            return false;
        }

        int mark() {
            return passed.size();
        }

        /** Writes (of data, zeroes or discards) that reached the device since {@code mark}. */
        List<FaultyDevice.Request> writesSince(int mark) {
            synchronized (passed) {
                return passed.subList(mark, passed.size()).stream()
                        .filter(r -> r.op() != FaultyDevice.Op.READ && r.op() != FaultyDevice.Op.FLUSH)
                        .toList();
            }
        }
    }

    /** The usual rig: the victim is {@code P 8} on a COW with room for every chunk. */
    FaultRig(Path dir) throws Exception {
        this(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of());
    }

    /**
     * @param victimStore    the victim's store letters
     * @param victimCowBytes its COW's size (created sparse, unless it exists)
     * @param victimCow      where its COW is
     * @param realFiles      file names opened as real {@link FileDevice}s
     */
    FaultRig(Path dir, String victimStore, long victimCowBytes, Path victimCow, List<String> realFiles)
            throws Exception {
        this.dir = dir;
        this.base = dir.resolve("base.img");
        this.victimCow = victimCow;
        byte[] content = new byte[(int) (SECTORS << 9)];
        for (int s = 0; s < SECTORS; s++) {
            Arrays.fill(content, s * 512, s * 512 + 512, (byte) (s * 7 + 1));
        }
        Files.write(base, content);
        model = new ReferenceSnapshotModel(content);
        lin = new byte[(int) (LIN_SECTORS << 9)];
        new Random(7).nextBytes(lin);
        Files.write(dir.resolve("plain.img"), lin);
        BackingDevices devices = new BackingDevices(real -> {
            String name = real.getFileName().toString();
            if (realFiles.contains(name)) {
                return FileDevice.open(real);
            }
            Faults f = faults.computeIfAbsent(name, k -> new Faults());
            FaultyDevice device = new FaultyDevice(FileDevice.open(real, FileDevice.Option.BUFFERED)).failWhen(f);
            f.device = device;
            return device;
        });
        CommitObserver observer = new CommitObserver() {
            @Override
            public void committed(dmsnap.store.ExceptionStore store, long latencyNanos, boolean success) {}

            @Override
            public void invalidated(String device, InvalidationCause cause) {
                invalidations.add(device + " " + cause.label());
            }
        };
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier, observer), devices);
        dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + base));
        if (!Files.exists(victimCow)) {
            sparse(victimCow, victimCowBytes);
        }
        victimTable = "0 " + SECTORS + " snapshot " + base + " " + victimCow + " " + victimStore + " 8";
        addSnapshot("victim", victimTable);
        addSnapshot(
                "other",
                "0 " + SECTORS + " snapshot " + base + " " + sparse(dir.resolve("other.cow"), 5 << 20) + " P 8");
        addSnapshot(
                "po", "0 " + SECTORS + " snapshot " + base + " " + sparse(dir.resolve("po.cow"), 5 << 20) + " PO 16");
        addSnapshot(
                "temp", "0 " + SECTORS + " snapshot " + base + " " + sparse(dir.resolve("temp.cow"), 5 << 20) + " N 8");
        dm.create("lin", null, TableParser.parse("0 " + LIN_SECTORS + " linear " + dir.resolve("plain.img") + " 0"));
    }

    static Path sparse(Path file, long bytes) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return file;
    }

    /** The LVM way: the snapshot appears while the origin is suspended. */
    void addSnapshot(String name, String table) throws Exception {
        dm.get("origin").suspend();
        try {
            dm.create(name, null, TableParser.parse(table));
        } finally {
            dm.get("origin").resume();
        }
        model.createSnapshot(name);
    }

    MappedDevice device(String name) {
        try {
            return dm.get(name);
        } catch (dmsnap.device.DmException e) {
            throw new AssertionError(e);
        }
    }

    Faults faultsOf(String file) {
        Faults f = faults.get(file);
        assertNotNull(f, file + " is not open");
        return f;
    }

    /** Writes {@code data} at {@code sector}: on success the model learns it; else the error. */
    IOException write(String device, long sector, byte[] data) throws InterruptedException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(data.length, 4096);
            buffer.copyFrom(MemorySegment.ofArray(data));
            device(device).submit(IoRequest.write(sector, buffer, false));
        } catch (IOException e) {
            return e;
        }
        if (device.equals("lin")) {
            System.arraycopy(data, 0, lin, (int) (sector << 9), data.length);
        } else {
            model.write(device, sector, data);
        }
        return null;
    }

    /** Random bytes written at {@code sector}; they must be accepted. */
    void mustWrite(String device, long sector, int sectors, Random random) throws InterruptedException {
        byte[] data = new byte[sectors << 9];
        random.nextBytes(data);
        IOException e = write(device, sector, data);
        if (e != null) {
            throw new AssertionError(device + ": write at " + sector + "+" + sectors + " failed: " + e.getMessage(), e);
        }
    }

    /** The error writing random bytes at {@code sector} gives: it must fail. */
    IOException mustFailWrite(String device, long sector, int sectors, Random random) throws InterruptedException {
        byte[] data = new byte[sectors << 9];
        random.nextBytes(data);
        IOException e = write(device, sector, data);
        if (e == null) {
            throw new AssertionError(device + ": write at " + sector + "+" + sectors + " succeeded");
        }
        return e;
    }

    byte[] read(String device, long sector, int sectors) throws IOException, InterruptedException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate((long) sectors << 9, 4096);
            device(device).submit(IoRequest.read(sector, buffer));
            return buffer.toArray(ValueLayout.JAVA_BYTE);
        }
    }

    byte[] expected(String device, long sector, int sectors) {
        if (device.equals("lin")) {
            return Arrays.copyOfRange(lin, (int) (sector << 9), (int) ((sector + sectors) << 9));
        }
        return model.read(device, sector, sectors << 9);
    }

    /** Reads {@code sectors} at {@code sector} and compares them with the model. */
    void mustRead(String device, long sector, int sectors) throws IOException, InterruptedException {
        assertArrayEquals(
                expected(device, sector, sectors),
                read(device, sector, sectors),
                device + " at " + sector + "+" + sectors);
    }

    IOException mustFailRead(String device, long sector, int sectors) throws InterruptedException {
        try {
            read(device, sector, sectors);
        } catch (IOException e) {
            return e;
        }
        throw new AssertionError(device + ": read at " + sector + "+" + sectors + " succeeded");
    }

    void flush(String device) throws IOException, InterruptedException {
        device(device).submit(IoRequest.flush());
    }

    /** The whole device, read in pieces, against the model. */
    void verify(String device) throws IOException, InterruptedException {
        long sectors = device.equals("lin") ? LIN_SECTORS : SECTORS;
        for (long s = 0; s < sectors; s += 256) {
            mustRead(device, s, 256);
        }
    }

    /** The origin, the bystander snapshots and lin read what the model says. */
    void verifyBystanders() throws IOException, InterruptedException {
        verify("origin");
        for (String s : BYSTANDERS) {
            verify(s);
        }
        verify("lin");
    }

    String status(String device) throws Exception {
        MappedDevice d = dm.get(device);
        return String.join("\n", d.statusLines(StatusType.INFO, false));
    }

    /** Status {@code Invalid} for the victim; usage numbers for every bystander snapshot. */
    void assertOnlyInvalid(String... invalid) throws Exception {
        List<String> bad = List.of(invalid);
        for (String s : List.of("victim", "other", "po", "temp")) {
            String status = status(s);
            if (bad.contains(s)) {
                assertEquals("0 " + SECTORS + " snapshot Invalid", status, s);
            } else {
                assertTrue(status.matches("0 " + SECTORS + " snapshot \\d+/\\d+ \\d+"), s + ": " + status);
            }
        }
    }

    /**
     * Random I/O on everything but {@code skip}: origin writes (new chunks copy into every valid
     * snapshot), writes on the bystander snapshots and lin, reads compared with the model; on
     * each skipped snapshot a read and a write that must fail (it is invalid).
     */
    /**
     * The chunks the fault tests aim their faults at (sectors 80-95: chunks 10 and 11, a 16-sector
     * snapshot's chunk 5; 800-807: chunk 100; 1600-1615: chunks 200 and 201): {@link #exercise}
     * never writes them, so that they are still new to
     * every snapshot when a test writes them, whatever the seed.
     */
    static boolean touchesReservedChunk(long sector, long sectors) {
        long first = sector / 8;
        long last = (sector + sectors - 1) / 8;
        return first <= 11 && last >= 10 || first <= 100 && last >= 100 || first <= 201 && last >= 200;
    }

    void exercise(Random random, int operations, List<String> skip) throws Exception {
        List<String> healthy = new ArrayList<>(List.of("origin", "lin"));
        for (String s : BYSTANDERS) {
            if (!skip.contains(s)) {
                healthy.add(s);
            }
        }
        for (int i = 0; i < operations; i++) {
            String device = healthy.get(random.nextInt(healthy.size()));
            long sectors = device.equals("lin") ? LIN_SECTORS : SECTORS;
            int length = 1 + random.nextInt(24);
            long sector = random.nextLong(sectors - length);
            while (!device.equals("lin") && touchesReservedChunk(sector, length)) {
                sector = random.nextLong(sectors - length);
            }
            if (random.nextBoolean()) {
                mustWrite(device, sector, length, random);
            } else {
                mustRead(device, sector, length);
            }
            if (i % 16 == 0) {
                for (String s : skip) {
                    mustFailRead(s, sector % SECTORS, 1);
                    mustFailWrite(s, random.nextLong(SECTORS - 8), 8, random);
                }
            }
        }
    }

    @Override
    public void close() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    // ---- the log --------------------------------------------------------------------------------

    /** What the logger (slf4j-simple, on System.err) prints while open; restored by close. */
    static final class LogCapture implements AutoCloseable {
        private final PrintStream original = System.err;
        private final ByteArrayOutputStream captured = new ByteArrayOutputStream();

        LogCapture() {
            System.setErr(new PrintStream(
                    new OutputStream() {
                        @Override
                        public void write(int b) {
                            synchronized (captured) {
                                captured.write(b);
                            }
                            original.write(b);
                        }

                        @Override
                        public void write(byte[] b, int off, int len) {
                            synchronized (captured) {
                                captured.write(b, off, len);
                            }
                            original.write(b, off, len);
                        }
                    },
                    true,
                    StandardCharsets.UTF_8));
        }

        List<String> lines() {
            synchronized (captured) {
                return List.of(captured.toString(StandardCharsets.UTF_8).split("\n"));
            }
        }

        /** ERROR lines, without the thread and logger prefix. */
        List<String> errors() {
            return lines().stream()
                    .filter(l -> l.contains(" ERROR "))
                    .map(l -> l.substring(l.indexOf(" - ") + 3))
                    .toList();
        }

        List<String> warnings() {
            return lines().stream()
                    .filter(l -> l.contains(" WARN "))
                    .map(l -> l.substring(l.indexOf(" - ") + 3))
                    .toList();
        }

        /** Lines of stack traces: an exception went somewhere it should not. */
        List<String> stackTraces() {
            return lines().stream()
                    .filter(l -> l.startsWith("\tat ") || l.startsWith("Exception in thread"))
                    .toList();
        }

        @Override
        public void close() {
            System.setErr(original);
        }
    }
}
