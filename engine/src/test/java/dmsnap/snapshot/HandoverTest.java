package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.DmException;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.ffm.Errno;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Spec 8 and checklist 59-70: handover between snapshot tables on one COW. */
class HandoverTest {
    @TempDir
    Path dir;

    @Test
    void anIdenticalReloadKeepsEveryExceptionAndShowsChunkZeroUntilResume() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 8, 0x55);
            e.write("snap", 16, 8, 0x66);
            String usage = e.status("snap", false);
            assertEquals("0 16384 snapshot 32/8192 16", usage);
            e.dm.load("snap", TableParser.parse(e.snapshotTable("P", 8)));
            assertEquals("0 16384 snapshot 0/8192 0", e.status("snap", true));
            assertEquals(
                    "0 16384 snapshot " + e.base.toRealPath() + " " + e.cow.toRealPath() + " P 0",
                    e.table("snap", true));
            refusesPairing(e, "snap"); // re-loading the pending inactive slot
            assertEquals("0 16384 snapshot 0/8192 0", e.status("snap", true), "the pending table stays");
            e.dm.get("snap").resume();
            assertEquals(usage, e.status("snap", false));
            assertEquals(SnapshotEngine.original(0), e.readByte("snap", 0));
            assertEquals(0x66, e.readByte("snap", 16));
            assertEquals(0x55, e.readByte("origin", 0));
        }
    }

    /**
     * A load of the snapshot table on {@code device} is refused with the kernel's pairing
     * sentence and EINVAL, and changes neither of the device's tables.
     */
    private static void refusesPairing(SnapshotEngine e, String device) throws Exception {
        String tables = e.dm.get(device).info().tablesPresent();
        String live = e.table(device, false);
        String inactive = e.table(device, true);
        TableLoadException x = assertThrows(
                TableLoadException.class, () -> e.dm.load(device, TableParser.parse(e.snapshotTable("P", 8))));
        assertEquals("Snapshot cow pairing for exception table handover failed", x.getMessage());
        assertEquals(Errno.EINVAL, x.errno());
        assertEquals(tables, e.dm.get(device).info().tablesPresent(), "the load changed nothing");
        assertEquals(live, e.table(device, false));
        assertEquals(inactive, e.table(device, true));
    }

    @Test
    void theSourceMayNotResumeWhileAHandoverIsPendingAndItsDeviceMustBeSuspended() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.createOriginAndSnapshot("P", 8);
            e.dm.create("snapB", null, null);
            e.dm.load("snapB", TableParser.parse(e.snapshotTable("P", 8)));
            DmException notSuspended =
                    assertThrows(DmException.class, () -> e.dm.get("snapB").resume());
            assertEquals("Unable to perform snapshot handover until source is suspended.", notSuspended.getMessage());
            assertEquals("SUSPENDED", e.dm.get("snapB").info().suspended() ? "SUSPENDED" : "ACTIVE");
            e.dm.get("snap").suspend();
            DmException source =
                    assertThrows(DmException.class, () -> e.dm.get("snap").resume());
            assertEquals("Unable to resume snapshot source until handover completes.", source.getMessage());
            e.dm.get("snapB").resume();
            assertEquals("0 16384 snapshot Invalid", e.status("snap", false));
            assertEquals("0 16384 snapshot 16/8192 16", e.status("snapB", false));
            // Resuming the old instance is allowed now, but it stays invalid and errors all I/O.
            e.dm.get("snap").resume();
            assertThrows(IOException.class, () -> e.readByte("snap", 0));
            // Until the old instance is removed, the COW takes no further table.
            e.dm.create("snapC", null, null);
            refusesPairing(e, "snapC");
            assertEquals("None", e.dm.get("snapC").info().tablesPresent());
            e.dm.remove("snap", false);
            e.dm.load("snapC", TableParser.parse(e.snapshotTable("P", 8)));
            assertEquals("0 16384 snapshot 0/8192 0", e.status("snapC", true));
        }
    }

    @Test
    void removingTheSourceCancelsThePendingHandover() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 8, 0x55);
            e.dm.create("snapB", null, null);
            e.dm.load("snapB", TableParser.parse(e.snapshotTable("P", 8)));
            e.dm.remove("snap", false);
            e.dm.get("snapB").resume();
            assertEquals("0 16384 snapshot Invalid", e.status("snapB", false));
            assertThrows(IOException.class, () -> e.readByte("snapB", 0));
            e.write("origin", 8, 8, 0x56); // origin unaffected
            assertEquals(1, Files.readAllBytes(e.cow)[4], "the COW header is still valid");
        }
    }

    @Test
    void theHandedOverStoreKeepsItsTypeAndChunkWhileOverflowComesFromTheNewTable() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.createOriginAndSnapshot("P", 8);
            e.dm.load("snap", TableParser.parse(e.snapshotTable("PO", 16)));
            e.dm.get("snap").resume();
            assertTrue(e.table("snap", false).endsWith(" PO 8"), e.table("snap", false));
            e.dm.load("snap", TableParser.parse(e.snapshotTable("N", 8)));
            e.dm.get("snap").resume();
            assertTrue(e.table("snap", false).endsWith(" P 8"), e.table("snap", false));
            // Writes are still split at the received chunk size of 8 sectors.
            e.dm.get("snap").submit(IoRequest.write(0, e.buffer(16).fill((byte) 9), false));
            assertEquals("0 16384 snapshot 32/8192 16", e.status("snap", false));
        }
    }
}
