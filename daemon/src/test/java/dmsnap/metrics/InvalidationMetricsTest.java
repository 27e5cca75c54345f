package dmsnap.metrics;

import static org.junit.jupiter.api.Assertions.assertFalse;

import dmsnap.daemon.CowMonitor;
import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.DeviceManager;
import dmsnap.net.ListenAddress;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code dmsnap_snapshot_invalidations_total{reason}}: 0 for both reasons from the start, one
 * count per invalidation (a COW that fails: {@code io_error}; a COW that is full:
 * {@code cow_full}), and the counts stay when the invalid snapshots are removed.
 */
class InvalidationMetricsTest {
    @TempDir
    Path dir;

    private Path file(String name, long bytes) throws Exception {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return p;
    }

    private static void addSnapshot(DeviceManager dm, String name, String table) throws Exception {
        dm.get("origin").suspend();
        dm.create(name, null, TableParser.parse(table));
        dm.get("origin").resume();
    }

    @Test
    void eachInvalidationCountsOnceByReasonAndTheCountOutlivesTheDevice() throws Exception {
        Path base = file("base.img", 8 << 20);
        Path failing = file("failing.cow", 1 << 20);
        Path tiny = file("tiny.cow", 3 * 4096); // the header, area 0 and one data chunk
        DaemonConfig config = new DaemonConfig(
                dir.resolve("run"),
                null,
                CowMonitor.Policy.defaults(),
                DaemonConfig.Nbd.UNIX_ONLY,
                new ListenAddress("127.0.0.1", 0));
        try (Daemon daemon = Daemon.start(config, "test");
                Arena arena = Arena.ofConfined()) {
            int port = daemon.metrics().port();
            DeviceManager dm = daemon.devices();
            Scrape s = Scrape.of(port);
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"io_error\"}", 0);
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"cow_full\"}", 0);

            dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + base));
            // A COW whose header and area 0 work and whose data chunks give EIO (the error target).
            dm.create("cowdev", null, TableParser.parse("0 16 linear " + failing + " 0\n16 2032 error"));
            addSnapshot(dm, "broken", "0 16384 snapshot " + base + " dm:cowdev P 8");
            addSnapshot(dm, "tiny", "0 16384 snapshot " + base + " " + tiny + " P 8");
            MemorySegment chunk = arena.allocate(4096, 4096);
            dm.get("origin").submit(IoRequest.write(0, chunk, false)); // broken: the copy fails
            dm.get("origin").submit(IoRequest.write(8, chunk, false)); // tiny: no room for a second chunk
            dm.get("origin").submit(IoRequest.write(16, chunk, false)); // neither needs anything now
            s = Scrape.of(port);
            s.expect("dmsnap_snapshot_state{device=\"broken\",state=\"invalid\"}", 1);
            s.expect("dmsnap_snapshot_state{device=\"tiny\",state=\"invalid\"}", 1);
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"io_error\"}", 1);
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"cow_full\"}", 1);

            dm.remove("broken", false);
            dm.remove("tiny", false);
            s = Scrape.of(port);
            assertFalse(s.mentionsDevice("broken") || s.mentionsDevice("tiny"), s.text());
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"io_error\"}", 1);
            s.expect("dmsnap_snapshot_invalidations_total{reason=\"cow_full\"}", 1);
        }
    }
}
