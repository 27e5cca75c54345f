package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.testing.TempFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** COW usage warnings at thresholds and LVM-style autoextend of a file COW. */
class CowMonitorTest {
    @TempDir
    Path dir;

    @Test
    void warnsOncePerThresholdAndExtendsAFileCowVisiblyInStatus() throws Exception {
        // 64 KiB COW: header, area, 14 data chunks.
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 64 << 10)) {
            e.createOriginAndSnapshot("P", 8);
            CowMonitor warnOnly = new CowMonitor(e.dm, CowMonitor.Policy.defaults());
            assertEquals(List.of(), warnOnly.check(), "16/128: nothing to say");
            for (int c = 0; c < 11; c++) {
                e.write("origin", c * 8L, 8, 1);
            }
            assertEquals("0 16384 snapshot 104/128 16", e.status("snap", false));
            List<CowMonitor.Event> events = warnOnly.check();
            assertEquals(1, events.size());
            assertEquals(
                    "snap: COW usage 81.3% (104/128 sectors) crossed 80%",
                    events.getFirst().message());
            assertEquals(List.of(), warnOnly.check(), "the same threshold is not repeated");

            CowMonitor extend = new CowMonitor(e.dm, new CowMonitor.Policy(new int[] {80, 95}, 60, 50));
            List<CowMonitor.Event> grown = extend.check();
            assertTrue(grown.stream().anyMatch(x -> x.kind().equals("extend")), grown.toString());
            assertEquals(96 << 10, Files.size(e.cow), "grown by 50%");
            assertTrue(grown.stream().anyMatch(x -> x.message().contains("extended thick COW")), grown.toString());
            assertEquals(96 << 10, TempFiles.allocatedBytes(e.cow), "a thick COW grows thick");
            assertEquals("0 16384 snapshot 104/192 16", e.status("snap", false), "visible in status at once");
            for (int c = 11; c < 20; c++) {
                e.write("origin", c * 8L, 8, 1);
            }
            assertEquals("0 16384 snapshot 176/192 16", e.status("snap", false), "the new room is used: no overflow");
        }
    }

    @Test
    void aSparseCowGrowsSparseAndItsStoreAllocatesTheNewRoomAheadAsItGoes() throws Exception {
        // 32 MiB made with truncate: its store allocates ahead by at most 3 MiB, so it stays sparse.
        Path base = Files.write(dir.resolve("base.img"), new byte[8 << 20]);
        Path cow = TempFiles.sparse(dir, "cow.img", 32 << 20);
        try (SnapshotEngine e = new SnapshotEngine(dir, base, cow, new BackingDevices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 100; c++) {
                e.write("origin", c * 8L, 8, 1);
            }
            CowMonitor extend = new CowMonitor(e.dm, new CowMonitor.Policy(new int[] {80, 95}, 1, 50));
            List<CowMonitor.Event> grown = extend.check();
            assertEquals(
                    List.of("extend"),
                    grown.stream().map(CowMonitor.Event::kind).toList(),
                    grown.toString());
            assertTrue(grown.getFirst().message().contains("extended sparse COW"), grown.toString());
            assertEquals(48 << 20, Files.size(cow), "grown by 50%");
            assertTrue(
                    TempFiles.allocatedBytes(cow) < 8 << 20, // the chunks in use and at most 1.5 extents ahead
                    "the new room is a hole: " + TempFiles.allocatedBytes(cow) + " bytes allocated");
            assertEquals("0 16384 snapshot 816/98304 16", e.status("snap", false), "visible in status at once");
        }
    }
}
