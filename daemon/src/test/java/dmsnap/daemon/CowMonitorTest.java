package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.engine.testing.SnapshotEngine;
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
            assertEquals("0 16384 snapshot 104/192 16", e.status("snap", false), "visible in status at once");
            for (int c = 11; c < 20; c++) {
                e.write("origin", c * 8L, 8, 1);
            }
            assertEquals("0 16384 snapshot 176/192 16", e.status("snap", false), "the new room is used: no overflow");
        }
    }
}
