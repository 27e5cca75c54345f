package dmsnap.engine.testing;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.snapshot.CommitObserver;
import dmsnap.snapshot.MergeSettings;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * An engine over files in a directory, for snapshot tests (the engine's and the daemon's): origin
 * and snapshot in a few calls. What needs the snapshot package's own state (the merging
 * snapshot) is in that package's tests ({@code MergeProbes}).
 */
public final class SnapshotEngine implements AutoCloseable {
    public final Path dir;
    public final Path base;
    public final Path cow;
    public final Registry registry = new Registry();
    public final ChunkCopier copier = new ChunkCopier(4, 1 << 20);
    public final DeviceManager dm;
    public final Arena arena = Arena.ofShared();
    public final long sectors;

    public SnapshotEngine(Path dir, long baseBytes, long cowBytes) throws IOException {
        this(dir, baseBytes, cowBytes, new BackingDevices());
    }

    /** With backing devices opened by {@code devices} (fault injection). */
    public SnapshotEngine(Path dir, long baseBytes, long cowBytes, BackingDevices devices) throws IOException {
        this(dir, fill(dir.resolve("base.img"), baseBytes), zeroes(dir.resolve("cow.img"), cowBytes), devices);
    }

    /** Over existing files (a restart after a crash): nothing is written. */
    public SnapshotEngine(Path dir, Path base, Path cow, BackingDevices devices) throws IOException {
        this(dir, base, cow, devices, MergeSettings.DEFAULTS);
    }

    /** The same, with merges batching their commits as {@code merge} says. */
    public SnapshotEngine(Path dir, Path base, Path cow, BackingDevices devices, MergeSettings merge)
            throws IOException {
        this.dir = dir;
        this.base = base;
        this.cow = cow;
        this.sectors = Files.size(base) >>> 9;
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), registry, copier, CommitObserver.NONE, merge),
                devices);
    }

    private static Path fill(Path base, long baseBytes) throws IOException {
        byte[] content = new byte[(int) baseBytes];
        for (int s = 0; s < baseBytes / 512; s++) {
            java.util.Arrays.fill(content, s * 512, s * 512 + 512, (byte) (s * 7 + 1));
        }
        Files.write(base, content);
        return base;
    }

    private static Path zeroes(Path file, long bytes) throws IOException {
        Files.write(file, new byte[(int) bytes]);
        return file;
    }

    public String snapshotTable(String store, int chunk) {
        return "0 " + sectors + " snapshot " + base + " " + cow + " " + store + " " + chunk;
    }

    /** origin + snapshot the LVM way: the snapshot appears while the origin is suspended. */
    public void createOriginAndSnapshot(String store, int chunk) throws Exception {
        dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + base));
        dm.get("origin").suspend();
        dm.create("snap", null, TableParser.parse(snapshotTable(store, chunk)));
        dm.get("origin").resume();
    }

    /**
     * Adds snapshot {@code name} of the origin device ({@code origin}, {@code originSectors} long)
     * the LVM way, on a new COW that can never overflow (lvm2's formula, spec 10.3); returns its table.
     */
    public String addSnapshot(String name, String store, int chunk, long originSectors) throws Exception {
        long n = (originSectors + chunk - 1) / chunk;
        long epa = chunk * 32L;
        long cowSectors = (1 + n + (n + epa) / epa) * chunk;
        Path cowFile = dir.resolve(name + ".cow");
        Files.write(cowFile, new byte[(int) (cowSectors << 9)]);
        String table = "0 " + originSectors + " snapshot " + base + " " + cowFile + " " + store + " " + chunk;
        dm.get("origin").suspend();
        dm.create(name, null, TableParser.parse(table));
        dm.get("origin").resume();
        return table;
    }

    public String mergeTable(String store, int chunk) {
        return "0 " + sectors + " snapshot-merge " + base + " " + cow + " " + store + " " + chunk;
    }

    /**
     * lvconvert --merge (spec 8.7): the snapshot-merge table is loaded into the origin device,
     * snapshot and origin are suspended, the origin resumed (handover; the merge starts), the
     * old snapshot device resumed (it is invalid now) and removed.
     */
    public void startMerge(String store, int chunk) throws Exception {
        dm.load("origin", TableParser.parse(mergeTable(store, chunk)));
        dm.get("origin").suspend();
        dm.get("snap").suspend();
        dm.get("origin").resume();
        dm.get("snap").resume();
        dm.remove("snap", false);
    }

    /** The whole device read through the engine, as a sha256. */
    public String sha(String device) throws Exception {
        MappedDevice d = dm.get(device);
        java.security.MessageDigest digest = java.security.MessageDigest.getInstance("SHA-256");
        MemorySegment buf = buffer(2048);
        for (long s = 0; s < d.sizeSectors(); s += 2048) {
            MemorySegment piece = buf.asSlice(0, Math.min(2048, d.sizeSectors() - s) << 9);
            d.submit(IoRequest.read(s, piece));
            digest.update(piece.asByteBuffer());
        }
        return java.util.HexFormat.of().formatHex(digest.digest());
    }

    public static String sha(Path file) throws Exception {
        return java.util.HexFormat.of()
                .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    public MemorySegment buffer(long sectorCount) {
        return arena.allocate(sectorCount << 9, 4096);
    }

    public void write(String device, long sector, long sectorCount, int value) throws Exception {
        dm.get(device).submit(IoRequest.write(sector, buffer(sectorCount).fill((byte) value), false));
    }

    public byte readByte(String device, long sector) throws Exception {
        MemorySegment b = buffer(1);
        dm.get(device).submit(IoRequest.read(sector, b));
        return b.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0);
    }

    /** The base file's original byte at {@code sector}. */
    public static byte original(long sector) {
        return (byte) (sector * 7 + 1);
    }

    public String status(String device, boolean inactive) throws Exception {
        MappedDevice d = dm.get(device);
        return String.join("\n", d.statusLines(StatusType.INFO, inactive));
    }

    public String table(String device, boolean inactive) throws Exception {
        MappedDevice d = dm.get(device);
        return String.join("\n", d.statusLines(StatusType.TABLE, inactive));
    }

    @Override
    public void close() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
        arena.close();
    }
}
