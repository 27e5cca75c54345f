package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.NBD_CMD_FLUSH;
import static dmsnap.nbd.NbdProtocol.NBD_EIO;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.store.testing.Figures;
import dmsnap.table.TableParser;
import dmsnap.target.StatusType;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Failing devices seen through NBD: the fault reaches only the client of the device that
 * failed. The fixture's devices ({@code vol}, {@code snap}, {@code lin}) get a fourth, {@code
 * victim}, a snapshot of {@code vol} whose COW is {@code dm:cowdev}: a linear device over a file
 * for the header and area 0, then the {@code error} target, so that every data chunk write (and
 * read) fails with EIO. Requests of the other clients are in flight while the fault happens.
 */
@Timeout(300)
class FailingDeviceNbdTest {
    private static int faultCases;

    @TempDir
    Path dir;

    @AfterAll
    static void summary() {
        System.out.println(
                "failing devices (NBD): " + faultCases + " fault cases, clients of the other exports saw no error");
        Figures.record(
                "faults.nbd",
                faultCases + " faults under NBD clients with requests in flight: only the failing"
                        + " export's client saw EIO, clients of the other exports saw no error");
    }

    private static void addVictim(NbdFixture fx, Path cowFile) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(cowFile.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        fx.dm.create("cowdev", null, TableParser.parse("0 16 linear " + cowFile + " 0\n16 2032 error"));
        fx.dm.get("vol").suspend();
        fx.dm.create(
                "victim",
                null,
                TableParser.parse("0 " + NbdFixture.SECTORS + " snapshot " + fx.base + " dm:cowdev P 8"));
        fx.dm.get("vol").resume();
    }

    private static String status(NbdFixture fx, String device) throws Exception {
        return String.join("", fx.dm.get(device).statusLines(StatusType.INFO, false));
    }

    private static byte[] original(long offset, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i += 512) {
            Arrays.fill(b, i, i + 512, NbdFixture.original(offset + i));
        }
        return b;
    }

    @Test
    void aFailingCowInvalidatesItsSnapshotAndOnlyItsClientSeesEio() throws Exception {
        Random random = new Random(16);
        try (NbdFixture fx = new NbdFixture(dir, Duration.ofSeconds(30))) {
            addVictim(fx, dir.resolve("victim.cow"));
            try (NbdTestClient vol = fx.open("vol", true);
                    NbdTestClient snap = fx.open("snap", true);
                    NbdTestClient lin = fx.open("lin", false);
                    NbdTestClient victim = fx.open("victim", true)) {
                assertArrayEquals(original(0, 4096), victim.read(0, 4096), "reads of the origin work");
                byte[] linData = new byte[65536];
                random.nextBytes(linData);
                assertEquals(0, lin.write(0, linData));

                // In flight together: lin and snap reads, then the origin write whose copy into the
                // victim's COW fails.
                lin.sendRead(11, 0, 65536);
                snap.sendRead(12, 8192, 8192);
                byte[] newData = new byte[8192];
                random.nextBytes(newData);
                vol.sendWrite(13, 8192, newData, true);
                Map<Long, NbdTestClient.Reply> replies = new HashMap<>();
                for (NbdTestClient c : new NbdTestClient[] {lin, snap, vol}) {
                    NbdTestClient.Reply r = c.reply();
                    replies.put(r.cookie(), r);
                }
                assertEquals(0, replies.get(11L).error());
                assertArrayEquals(linData, replies.get(11L).data());
                assertEquals(0, replies.get(12L).error());
                assertArrayEquals(original(8192, 8192), replies.get(12L).data());
                assertEquals(0, replies.get(13L).error(), "the origin write goes ahead");

                assertEquals("0 16384 snapshot Invalid", status(fx, "victim"));
                assertTrue(status(fx, "snap").matches("0 16384 snapshot \\d+/\\d+ \\d+"), status(fx, "snap"));
                victim.sendRead(21, 0, 4096);
                assertEquals(NBD_EIO, victim.reply().error(), "I/O to an invalid snapshot fails");
                assertEquals(NBD_EIO, victim.write(0, new byte[4096]));
                assertEquals(0, victim.command(NBD_CMD_FLUSH, 0, 0, 0), "a flush still works (spec 5.2)");

                assertArrayEquals(newData, vol.read(8192, 8192));
                assertArrayEquals(original(8192, 8192), snap.read(8192, 8192));
                assertArrayEquals(linData, lin.read(0, 65536));
                for (int i = 0; i < 32; i++) { // more copy-outs, none into the victim
                    byte[] d = new byte[4096];
                    random.nextBytes(d);
                    assertEquals(0, vol.write(65536 + i * 8192L, d));
                    assertArrayEquals(original(65536 + i * 8192L, 4096), snap.read(65536 + i * 8192L, 4096));
                }
                for (NbdTestClient c : new NbdTestClient[] {vol, snap, lin}) {
                    assertEquals(0, c.command(NBD_CMD_FLUSH, 0, 0, 0), "the connection still serves");
                }
            }
        }
        faultCases++;
    }

    @Test
    void anOriginReadErrorFailsThatReadOnly() throws Exception {
        try (NbdFixture fx = new NbdFixture(dir, Duration.ofSeconds(30))) {
            // A second origin over a device with a bad stretch at sectors 1024-1031, and a snapshot of it.
            Path base2 = dir.resolve("base2.img");
            java.nio.file.Files.write(base2, NbdFixture.pattern(NbdFixture.SECTORS));
            Path cow2 = dir.resolve("snap2.cow");
            java.nio.file.Files.write(cow2, new byte[9 << 20]);
            fx.dm.create(
                    "bad",
                    null,
                    TableParser.parse("0 1024 linear " + base2 + " 0\n1024 8 error\n1032 " + (NbdFixture.SECTORS - 1032)
                            + " linear " + base2 + " 1032"));
            fx.dm.create("vol2", null, TableParser.parse("0 " + NbdFixture.SECTORS + " snapshot-origin dm:bad"));
            fx.dm.get("vol2").suspend();
            fx.dm.create(
                    "snap2", null, TableParser.parse("0 " + NbdFixture.SECTORS + " snapshot dm:bad " + cow2 + " P 8"));
            fx.dm.get("vol2").resume();
            try (NbdTestClient vol2 = fx.open("vol2", true);
                    NbdTestClient snap2 = fx.open("snap2", true);
                    NbdTestClient vol = fx.open("vol", true);
                    NbdTestClient lin = fx.open("lin", true)) {
                vol2.sendRead(1, 1024 * 512, 4096);
                vol.sendRead(2, 1024 * 512, 4096);
                snap2.sendRead(3, 1024 * 512, 4096); // no exception there: read from the origin
                lin.sendRead(4, 0, 4096);
                assertEquals(NBD_EIO, vol2.reply().error());
                assertEquals(0, vol.reply().error());
                assertEquals(NBD_EIO, snap2.reply().error());
                assertEquals(0, lin.reply().error());
                assertArrayEquals(original(0, 4096), vol2.read(0, 4096), "the rest of the origin reads");
                assertArrayEquals(original(2048 * 512, 4096), snap2.read(2048 * 512, 4096));
                for (String device : new String[] {"snap", "snap2"}) {
                    assertTrue(status(fx, device).matches("0 16384 snapshot \\d+/\\d+ \\d+"), status(fx, device));
                }
            }
        }
        faultCases++;
    }
}
