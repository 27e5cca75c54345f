package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.snapshot.CommitObserver;
import dmsnap.snapshot.MergeSettings;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.TargetTypes;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The NBD contract in the default cache mode {@code none}: a write's reply promises nothing, a
 * FLUSH on any connection of the export commits the exceptions of the writes replied to on every
 * connection ({@code CAN_MULTI_CONN}), a FUA write is committed when it is replied to. What is
 * committed is read from the COW file: area 0 (chunk 1, 4 KiB chunks) gets an entry per exception.
 */
class NbdCacheModeTest {
    @TempDir
    Path dir;

    /** Area 0's entry {@code index} as {old, new} (both 0: none). */
    private static long[] entry(Path cow, int index) throws Exception {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(cow)).order(ByteOrder.LITTLE_ENDIAN);
        return new long[] {b.getLong(4096 + index * 16), b.getLong(4096 + index * 16 + 8)};
    }

    @Test
    void aFlushOnAnotherConnectionCommitsAndAFuaWriteIsCommittedWhenReplied() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), NbdFixture.pattern(2048));
        Path cow = Files.write(dir.resolve("cow.img"), new byte[1 << 20]);
        try (ChunkCopier copier = new ChunkCopier(2, 1 << 20)) {
            DeviceManager dm = new DeviceManager(
                    // A commit timer that never fires: "replied, not committed" holds however slow the machine.
                    SnapshotTargets.register(
                            TargetTypes.withBasicTargets(),
                            new Registry(),
                            copier,
                            CommitObserver.NONE,
                            MergeSettings.DEFAULTS,
                            task -> {}),
                    new BackingDevices(),
                    CacheMode.NONE);
            dm.create("vol", null, TableParser.parse("0 2048 snapshot-origin " + base));
            dm.get("vol").suspend();
            dm.create("snap", null, TableParser.parse("0 2048 snapshot " + base + " " + cow + " P 8"));
            dm.get("vol").resume();
            try (NbdServer server = new NbdServer(
                            dm,
                            dir.resolve("nbd.sock"),
                            null,
                            null,
                            new NbdServer.Settings(Duration.ofMinutes(1), 1024, 16, 64L << 20, new ManualClock()));
                    NbdTestClient a = NbdTestClient.open(server.socketPath(), "snap", false);
                    NbdTestClient b = NbdTestClient.open(server.socketPath(), "snap", false)) {
                byte[] data = new byte[4096];
                Arrays.fill(data, (byte) 0x5a);
                assertEquals(0, a.write(3 * 4096, data));
                assertArrayEquals(new long[] {0, 0}, entry(cow, 0), "replied, not committed");
                assertArrayEquals(data, b.read(3 * 4096, 4096), "the other connection reads it");
                assertEquals(0, b.command(NbdProtocol.NBD_CMD_FLUSH, 0, 0, 0));
                assertArrayEquals(new long[] {3, 2}, entry(cow, 0), "the FLUSH on b committed a's write");

                a.sendWrite(9, 5 * 4096, data, true);
                assertEquals(0, a.reply().error());
                assertArrayEquals(new long[] {5, 3}, entry(cow, 1), "FUA: committed when replied");
            }
            for (var d : dm.list()) {
                dm.remove(d.name(), true);
            }
        }
    }
}
