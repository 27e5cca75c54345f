package dmsnap.snapshot;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.IoRequest;
import dmsnap.device.MappedDevice;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/** An engine over files in a directory, for snapshot tests: origin and snapshot in a few calls. */
final class SnapshotEngine implements AutoCloseable {
    final Path dir;
    final Path base;
    final Path cow;
    final Registry registry = new Registry();
    final ChunkCopier copier = new ChunkCopier(4, 1 << 20);
    final DeviceManager dm;
    final Arena arena = Arena.ofShared();
    final long sectors;

    SnapshotEngine(Path dir, long baseBytes, long cowBytes) throws IOException {
        this.dir = dir;
        this.sectors = baseBytes >>> 9;
        base = dir.resolve("base.img");
        cow = dir.resolve("cow.img");
        byte[] content = new byte[(int) baseBytes];
        for (int s = 0; s < baseBytes / 512; s++) {
            java.util.Arrays.fill(content, s * 512, s * 512 + 512, (byte) (s * 7 + 1));
        }
        Files.write(base, content);
        Files.write(cow, new byte[(int) cowBytes]);
        dm = new DeviceManager(SnapshotTargets.register(TargetTypes.withBasicTargets(), registry, copier),
                new BackingDevices());
    }

    String snapshotTable(String store, int chunk) {
        return "0 " + sectors + " snapshot " + base + " " + cow + " " + store + " " + chunk;
    }

    /** origin + snapshot the LVM way: the snapshot appears while the origin is suspended. */
    void createOriginAndSnapshot(String store, int chunk) throws Exception {
        dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + base));
        dm.get("origin").suspend();
        dm.create("snap", null, TableParser.parse(snapshotTable(store, chunk)));
        dm.get("origin").resume();
    }

    MemorySegment buffer(long sectorCount) {
        return arena.allocate(sectorCount << 9, 4096);
    }

    void write(String device, long sector, long sectorCount, int value) throws Exception {
        dm.get(device).submit(IoRequest.write(sector, buffer(sectorCount).fill((byte) value), false));
    }

    byte readByte(String device, long sector) throws Exception {
        MemorySegment b = buffer(1);
        dm.get(device).submit(IoRequest.read(sector, b));
        return b.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0);
    }

    /** The base file's original byte at {@code sector}. */
    static byte original(long sector) {
        return (byte) (sector * 7 + 1);
    }

    String status(String device, boolean inactive) throws Exception {
        MappedDevice d = dm.get(device);
        return String.join("\n", d.statusLines(StatusType.INFO, inactive));
    }

    String table(String device, boolean inactive) throws Exception {
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
