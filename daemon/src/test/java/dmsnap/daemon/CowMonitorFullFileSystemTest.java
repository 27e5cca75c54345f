package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.Figures;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Autoextend ({@code --autoextend-threshold/--autoextend-percent}) of a COW whose file system is
 * full: the growth fails at once with the file system's ENOSPC (the new room is allocated, as an
 * LV's extents are, not promised by a sparse size), said in one ERROR line; it is not tried
 * again, nor logged again, until the file system has more room; the snapshot then fills up and
 * is invalidated as any full COW (one line), and the monitor says nothing more about it. When
 * room appears, the next check grows the COW.
 */
class CowMonitorFullFileSystemTest {
    private static final int CHUNK = 4096;
    /** 64 KiB: the header, area 0 and 14 data chunks. */
    private static final int COW_BYTES = 16 * CHUNK;

    @TempDir
    Path dir;

    /** An origin (8 MiB) and a snapshot whose COW is a 64 KiB file on a full 256 KiB tmpfs. */
    private static final class Rig implements AutoCloseable {
        final TinyTmpfs fs;
        final Path cow;
        final ChunkCopier copier = new ChunkCopier(2, 1 << 20);
        final DeviceManager dm;
        final CowMonitor monitor;
        final Arena arena = Arena.ofShared();

        Rig(Path dir) throws Exception {
            fs = TinyTmpfs.mount(dir.resolve("fs"), 256);
            boolean ok = false;
            try {
                Path base = dir.resolve("base.img");
                Files.write(base, new byte[8 << 20]);
                cow = fs.path().resolve("snap.cow");
                Files.write(cow, new byte[COW_BYTES]); // a thick COW: its own chunks are allocated
                dm = new DeviceManager(
                        SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier),
                        new BackingDevices());
                dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + base));
                dm.get("origin").suspend();
                dm.create("snap", null, TableParser.parse("0 16384 snapshot " + base + " " + cow + " P 8"));
                dm.get("origin").resume();
                monitor = new CowMonitor(dm, new CowMonitor.Policy(new int[] {80, 95}, 50, 50));
                fs.fill();
                ok = true;
            } finally {
                if (!ok) {
                    fs.close();
                }
            }
        }

        void originWrite(int chunk) throws Exception {
            dm.get("origin")
                    .submit(IoRequest.write(
                            chunk * 8L, arena.allocate(CHUNK, CHUNK).fill((byte) chunk), false));
        }

        String status() throws Exception {
            MappedDevice d = dm.get("snap");
            return String.join("", d.statusLines(StatusType.INFO, false));
        }

        List<String> kinds(List<CowMonitor.Event> events) {
            return events.stream().map(CowMonitor.Event::kind).toList();
        }

        @Override
        public void close() throws Exception {
            try {
                for (MappedDevice d : dm.list()) {
                    dm.remove(d.name(), true);
                }
                copier.close();
                arena.close();
            } finally {
                fs.close();
            }
        }
    }

    /** ERROR lines the logger prints (on System.err) while {@code body} runs. */
    private static List<String> errorsOf(ThrowingRunnable body) throws Exception {
        PrintStream original = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(
                new OutputStream() {
                    @Override
                    public void write(int b) {
                        captured.write(b);
                        original.write(b);
                    }
                },
                true,
                StandardCharsets.UTF_8));
        try {
            body.run();
        } finally {
            System.setErr(original);
        }
        return captured.toString(StandardCharsets.UTF_8)
                .lines()
                .filter(l -> l.contains(" ERROR "))
                .map(l -> l.substring(l.indexOf(" - ") + 3))
                .toList();
    }

    @FunctionalInterface
    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    @Test
    void aFullFileSystemSaysSoOnceAndTheSnapshotThenFillsAndIsInvalidated() throws Exception {
        try (Rig rig = new Rig(dir)) {
            for (int chunk = 0; chunk < 8; chunk++) {
                rig.originWrite(chunk);
            }
            assertEquals("0 16384 snapshot 80/128 16", rig.status()); // 62.5%: past the threshold
            List<String> errors = errorsOf(() -> {
                List<CowMonitor.Event> first = rig.monitor.check();
                assertEquals(List.of("extend-failed"), rig.kinds(first));
                assertEquals(
                        "snap: cannot grow COW " + rig.cow + " from 65536 to 98304 bytes: fallocate(path=" + rig.cow
                                + ", offset=65536, length=32768) failed: ENOSPC (No space left on device)",
                        first.getFirst().message());
                assertEquals(COW_BYTES, Files.size(rig.cow), "the COW is as it was");
                // No room appeared: no new attempt, nothing logged.
                for (int i = 0; i < 5; i++) {
                    assertEquals(List.of(), rig.monitor.check());
                }
                for (int chunk = 8; chunk < 14; chunk++) {
                    rig.originWrite(chunk);
                }
                assertEquals("0 16384 snapshot 128/128 16", rig.status());
                assertEquals(List.of("warn"), rig.kinds(rig.monitor.check()), "95% crossed; growth not tried again");
                rig.originWrite(14); // no room for the 15th exception
                assertEquals("0 16384 snapshot Invalid", rig.status());
                for (int i = 0; i < 3; i++) {
                    assertEquals(List.of(), rig.monitor.check(), "an invalid snapshot is left alone");
                }
            });
            assertEquals(
                    List.of(
                            "snap: cannot grow COW " + rig.cow + " from 65536 to 98304 bytes: fallocate(path=" + rig.cow
                                    + ", offset=65536, length=32768) failed: ENOSPC (No space left on device)",
                            "snap: Invalidating snapshot: Unable to allocate exception. COW " + rig.cow
                                    + " is full (128 sectors)"),
                    errors);
            Figures.record(
                    "faults.autoextend",
                    "autoextend on a full file system: one ERROR line (ENOSPC, the COW"
                            + " unchanged), no retry while there is no room (8 checks), then the COW filled and the snapshot was"
                            + " invalidated alone with one more line");
        }
    }

    @Test
    void whenRoomAppearsTheNextCheckGrowsTheCow() throws Exception {
        try (Rig rig = new Rig(dir)) {
            for (int chunk = 0; chunk < 8; chunk++) {
                rig.originWrite(chunk);
            }
            assertEquals(List.of("extend-failed"), rig.kinds(rig.monitor.check()));
            assertEquals(List.of(), rig.monitor.check());
            Files.delete(rig.fs.path().resolve("filler"));
            List<CowMonitor.Event> events = rig.monitor.check();
            assertEquals(List.of("extend"), rig.kinds(events), events.toString());
            assertEquals(COW_BYTES * 3 / 2, Files.size(rig.cow));
            assertEquals("0 16384 snapshot 80/192 16", rig.status());
            for (int chunk = 8; chunk < 20; chunk++) {
                rig.originWrite(chunk); // 20 exceptions: more than the old COW held
            }
            assertEquals("0 16384 snapshot 176/192 16", rig.status());
        }
    }
}
