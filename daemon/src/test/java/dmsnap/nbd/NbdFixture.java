package dmsnap.nbd;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.FileDevice;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.TargetTypes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * An engine with an origin ({@code vol}), a snapshot of it ({@code snap}, P 8) and a linear
 * device ({@code lin}) over files in {@code dir}, served by an {@link NbdServer} on
 * {@code dir/nbd.sock}. With a plain timeout, the server's clock is a {@link ManualClock} nobody
 * moves: no connection is timed out because the machine is slow. A test may open the base itself
 * (to record or fail its I/O) and pick the cache mode of the devices.
 */
final class NbdFixture implements AutoCloseable {
    static final int SECTORS = 16384;
    final Path dir;
    final Path base;
    final Path cow;
    final Path plain;
    final ChunkCopier copier = new ChunkCopier(4, 1 << 20);
    final DeviceManager dm;
    final NbdServer server;

    NbdFixture(Path dir, Duration timeout) throws Exception {
        this(dir, timeout, CacheMode.DIRECTSYNC, null);
    }

    NbdFixture(Path dir, NbdServer.Settings settings, String defaultExport) throws Exception {
        this(dir, settings, defaultExport, CacheMode.DIRECTSYNC, null);
    }

    /** With the devices in {@code mode}, the base file opened by {@code openBase} (null: as the others). */
    NbdFixture(Path dir, Duration timeout, CacheMode mode, BackingDevices.Opener openBase) throws Exception {
        this(dir, new NbdServer.Settings(timeout, 1024, 16, 64L << 20, new ManualClock()), null, mode, openBase);
    }

    private NbdFixture(
            Path dir, NbdServer.Settings settings, String defaultExport, CacheMode mode, BackingDevices.Opener openBase)
            throws Exception {
        this.dir = Files.createDirectories(dir);
        base = dir.resolve("base.img");
        cow = dir.resolve("cow.img");
        plain = dir.resolve("plain.img");
        Files.write(base, pattern(SECTORS));
        // Room for every chunk of snap and its metadata (2048 data chunks, the header and 9 areas):
        // no request stream, however mutated, can overflow it and invalidate snap for later clients.
        Files.write(cow, new byte[9 << 20]);
        Files.write(plain, new byte[1 << 20]);
        BackingDevices devices = openBase == null
                ? new BackingDevices()
                : new BackingDevices(real ->
                        real.getFileName().equals(base.getFileName()) ? openBase.open(real) : FileDevice.open(real));
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), devices, mode);
        dm.create("vol", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + base));
        dm.get("vol").suspend();
        dm.create("snap", null, TableParser.parse("0 " + SECTORS + " snapshot " + base + " " + cow + " P 8"));
        dm.get("vol").resume();
        dm.create("lin", null, TableParser.parse("0 2048 linear " + plain + " 0"));
        server = new NbdServer(dm, dir.resolve("nbd.sock"), null, defaultExport, settings);
    }

    /** Sector i holds the byte {@code i * 7 + 1}. */
    static byte[] pattern(int sectors) {
        byte[] b = new byte[sectors * 512];
        for (int s = 0; s < sectors; s++) {
            java.util.Arrays.fill(b, s * 512, s * 512 + 512, (byte) (s * 7 + 1));
        }
        return b;
    }

    static byte original(long offsetBytes) {
        return (byte) ((offsetBytes >>> 9) * 7 + 1);
    }

    NbdTestClient open(String export, boolean structured) throws Exception {
        return NbdTestClient.open(server.socketPath(), export, structured);
    }

    @Override
    public void close() throws Exception {
        server.close();
        for (var d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }
}
