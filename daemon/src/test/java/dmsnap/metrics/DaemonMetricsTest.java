package dmsnap.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.daemon.CowMonitor;
import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.DeviceManager;
import dmsnap.net.ListenAddress;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An in-process daemon with {@code --metrics 127.0.0.1:0}, scraped over HTTP after known I/O:
 * device counters, copy-out, commit latency, COW usage and state, renames and removes.
 */
class DaemonMetricsTest {
    private static final double CHUNK = 4096;

    @TempDir
    Path dir;

    private DaemonConfig config(int port) {
        return new DaemonConfig(
                dir.resolve("run"),
                null,
                CowMonitor.Policy.defaults(),
                DaemonConfig.Nbd.UNIX_ONLY,
                new ListenAddress("127.0.0.1", port));
    }

    private Path file(String name, long bytes) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return p;
    }

    private static void addSnapshot(DeviceManager dm, String name, Path base, Path cow) throws Exception {
        dm.get("origin").suspend();
        dm.create(name, null, TableParser.parse("0 16384 snapshot " + base + " " + cow + " P 8"));
        dm.get("origin").resume();
    }

    @Test
    void scrapeShowsDeviceIoCopiesCommitsAndCowUsageAfterKnownIo() throws Exception {
        Path base = file("base.img", 8 << 20);
        Path cow = file("snap.cow", 4 << 20);
        Path tinyCow = file("tiny.cow", 3 * 4096); // header, one area, one data chunk
        try (Daemon daemon = Daemon.start(config(0), "test");
                Arena arena = Arena.ofConfined()) {
            int port = daemon.metrics().port();
            assertTrue(port > 0);
            DeviceManager dm = daemon.devices();
            Scrape empty = Scrape.of(port);
            empty.expect("dmsnap_chunk_copies_total", 0);
            assertTrue(empty.text().contains("# TYPE dmsnap_exception_commit_seconds histogram"), empty.text());

            dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + base));
            addSnapshot(dm, "snap", base, cow);
            MemorySegment chunk = arena.allocate(4096, 4096);
            MemorySegment sector = arena.allocate(512, 4096);
            dm.get("origin").submit(IoRequest.write(0, chunk, false)); // copy-out of chunk 0
            dm.get("origin").submit(IoRequest.write(0, chunk, false)); // already preserved
            dm.get("origin").submit(IoRequest.flush());
            dm.get("snap").submit(IoRequest.read(0, sector));
            dm.get("snap").submit(IoRequest.write(9, sector, false)); // partial: copies chunk 1
            // The daemon's default cache mode (none) commits a snapshot write's exception at the
            // next FLUSH at the latest: it is counted when it is committed.
            dm.get("snap").submit(IoRequest.flush());
            assertThrows(IOException.class, () -> dm.get("origin").submit(IoRequest.write(16384, sector, false)));

            Scrape s = Scrape.of(port);
            s.expect("dmsnap_device_writes_total{device=\"origin\"}", 3);
            s.expect("dmsnap_device_written_bytes_total{device=\"origin\"}", 2 * CHUNK + 512);
            s.expect("dmsnap_device_io_errors_total{device=\"origin\"}", 1);
            s.expect("dmsnap_device_flushes_total{device=\"origin\"}", 1);
            s.expect("dmsnap_device_reads_total{device=\"origin\"}", 0);
            s.expect("dmsnap_device_reads_total{device=\"snap\"}", 1);
            s.expect("dmsnap_device_read_bytes_total{device=\"snap\"}", 512);
            s.expect("dmsnap_device_cached_reads_total{device=\"snap\"}", 0); // O_DIRECT (none): never
            s.expect("dmsnap_device_writes_total{device=\"snap\"}", 1);
            s.expect("dmsnap_device_written_bytes_total{device=\"snap\"}", 512);
            s.expect("dmsnap_device_io_errors_total{device=\"snap\"}", 0);
            s.expect("dmsnap_device_discards_total{device=\"snap\"}", 0);
            s.expect("dmsnap_chunk_copies_total", 2);
            s.expect("dmsnap_chunk_copy_read_bytes_total", 2 * CHUNK);
            s.expect("dmsnap_chunk_copy_written_bytes_total", 2 * CHUNK);
            s.expect("dmsnap_chunk_copy_errors_total{op=\"read\"}", 0);
            s.expect("dmsnap_chunk_copy_errors_total{op=\"write\"}", 0);
            s.expect("dmsnap_exception_commit_seconds_count{store=\"persistent\"}", 2);
            s.expect("dmsnap_exception_commit_seconds_count{store=\"transient\"}", 0);
            s.expect("dmsnap_exception_commit_seconds_bucket{store=\"persistent\",le=\"+Inf\"}", 2);
            assertTrue(s.value("dmsnap_exception_commit_seconds_sum{store=\"persistent\"}") > 0);
            s.expect("dmsnap_exception_commit_failures_total{store=\"persistent\"}", 0);
            // 16/8192 16 plus two data chunks, as dmsetup status says.
            assertEquals(
                    "0 16384 snapshot 32/8192 16",
                    String.join("", dm.get("snap").statusLines(dmsnap.target.StatusType.INFO, false)));
            s.expect("dmsnap_snapshot_cow_allocated_sectors{device=\"snap\"}", 32);
            s.expect("dmsnap_snapshot_cow_total_sectors{device=\"snap\"}", 8192);
            s.expect("dmsnap_snapshot_cow_metadata_sectors{device=\"snap\"}", 16);
            s.expect("dmsnap_snapshot_state{device=\"snap\",state=\"valid\"}", 1);
            s.expect("dmsnap_snapshot_state{device=\"snap\",state=\"invalid\"}", 0);
            s.expect("dmsnap_snapshot_state{device=\"snap\",state=\"overflow\"}", 0);
            assertFalse(s.text().contains("dmsnap_snapshot_state{device=\"origin\""), "an origin has no COW");

            // A second snapshot whose COW holds one chunk: chunk 2 goes to both COWs in one copy,
            // chunk 3 does not fit in it and invalidates it.
            addSnapshot(dm, "tiny", base, tinyCow);
            dm.get("origin").submit(IoRequest.write(16, chunk, false));
            dm.get("origin").submit(IoRequest.write(24, chunk, false));
            s = Scrape.of(port);
            s.expect("dmsnap_chunk_copies_total", 4);
            s.expect("dmsnap_chunk_copy_read_bytes_total", 4 * CHUNK);
            s.expect("dmsnap_chunk_copy_written_bytes_total", 5 * CHUNK);
            s.expect("dmsnap_exception_commit_seconds_count{store=\"persistent\"}", 5);
            s.expect("dmsnap_snapshot_cow_allocated_sectors{device=\"snap\"}", 48);
            s.expect("dmsnap_snapshot_state{device=\"tiny\",state=\"invalid\"}", 1);
            s.expect("dmsnap_snapshot_state{device=\"tiny\",state=\"valid\"}", 0);
            assertFalse(
                    s.series().containsKey("dmsnap_snapshot_cow_allocated_sectors{device=\"tiny\"}"),
                    "an invalid snapshot's status has no usage numbers");

            // A rename continues the same counters under the new name; a remove drops the device.
            dm.rename("snap", "renamed");
            s = Scrape.of(port);
            assertFalse(s.mentionsDevice("snap"), s.text());
            s.expect("dmsnap_device_reads_total{device=\"renamed\"}", 1);
            s.expect("dmsnap_snapshot_cow_allocated_sectors{device=\"renamed\"}", 48);
            dm.remove("renamed", false);
            dm.remove("tiny", false);
            s = Scrape.of(port);
            assertFalse(s.mentionsDevice("renamed"), s.text());
            assertFalse(s.mentionsDevice("tiny"), s.text());
            s.expect("dmsnap_device_writes_total{device=\"origin\"}", 5);
            s.expect("dmsnap_chunk_copies_total", 4);

            daemon.stop();
            assertThrows(ConnectException.class, () -> Scrape.of(port), "the orderly stop closes /metrics");
        }
    }

    @Test
    void aTakenPortFailsTheStartInOneLineAndLeavesTheRunDirectoryFree() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            IOException e = assertThrows(IOException.class, () -> Daemon.start(config(taken.getLocalPort()), "test"));
            assertEquals("metrics on 127.0.0.1:" + taken.getLocalPort() + ": Address already in use", e.getMessage());
        }
        try (Daemon again = Daemon.start(config(0), "test")) {
            assertTrue(again.metrics().port() > 0, "the failed start released the run directory's lock");
        }
    }

    @Test
    void withoutTheOptionNothingIsServed() throws Exception {
        try (Daemon daemon = Daemon.start(new DaemonConfig(dir.resolve("run"), null), "test")) {
            assertEquals(null, daemon.metrics());
        }
    }
}
