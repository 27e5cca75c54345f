package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.target.CacheMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --cache}: the daemon's default mode, a create's or load's own, kept by a load that
 * names none, shown by {@code info} and {@code info --json}, recorded in the state directory so
 * that a restart (with another default) brings each device back in its mode.
 */
class CacheModeCliTest {
    @TempDir
    Path dir;

    private Path run() {
        return dir.resolve("run");
    }

    private Daemon start(CacheMode defaultMode) throws Exception {
        return Daemon.start(
                new DaemonConfig(
                        run(),
                        dir.resolve("state"),
                        dmsnap.daemon.CowMonitor.Policy.defaults(),
                        DaemonConfig.Nbd.UNIX_ONLY,
                        null,
                        // No commit interval passes within a test: what it sees uncommitted stays so.
                        new DaemonConfig.Cache(defaultMode, Duration.ofDays(1))),
                "test");
    }

    private CliRunner cli(String... args) {
        String[] all = java.util.Arrays.copyOf(args, args.length + 2);
        all[args.length] = "--run-dir";
        all[args.length + 1] = run().toString();
        return CliRunner.run(all);
    }

    private void ok(String... args) {
        CliRunner r = cli(args);
        assertEquals(0, r.exitCode(), String.join(" ", args) + ": " + r.err());
    }

    /** The "Cache mode:" line of {@code info NAME}. */
    private String modeLine(String name) {
        CliRunner r = cli("info", name);
        assertEquals(0, r.exitCode(), r.err());
        return r.out()
                .lines()
                .filter(l -> l.startsWith("Cache mode:"))
                .findFirst()
                .orElse("(none)");
    }

    private String jsonMode(String name) throws Exception {
        CliRunner r = cli("info", name, "--json");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode device = new ObjectMapper().readTree(r.out()).path("devices").path(0);
        return device.path("cache").asText();
    }

    @Test
    void theDefaultACreatesAndALoadsModeShowInInfoAndSurviveARestartWithAnotherDefault() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), new byte[1 << 20]);
        Path cow = Files.write(dir.resolve("snap.cow"), new byte[1 << 20]);
        String snapshot = "0 2048 snapshot " + base + " " + cow + " P 8";
        try (Daemon d = start(CacheMode.NONE)) {
            ok("create", "vol", "--table", "0 2048 snapshot-origin " + base);
            assertEquals("Cache mode:        none", modeLine("vol"), "the daemon's default");
            ok("suspend", "vol");
            ok("create", "snap", "--cache", "directsync", "--table", snapshot);
            ok("resume", "vol");
            assertEquals("Cache mode:        directsync", modeLine("snap"));
            assertEquals("directsync", jsonMode("snap"));
            String info = cli("info", "snap").out();
            assertTrue(
                    info.indexOf("Number of targets: 1\nCache mode:        directsync\n") > 0,
                    "after the table's line: " + info);

            // A reload without --cache keeps the device's mode (a snapshot refresh, say).
            ok("load", "snap", "--table", snapshot);
            ok("suspend", "snap");
            ok("resume", "snap");
            assertEquals("directsync", jsonMode("snap"));
            // With one, the new table has it.
            ok("load", "snap", "--cache", "WRITEBACK", "--table", snapshot);
            assertEquals("directsync", jsonMode("snap"), "the live table's until the resume");
            ok("suspend", "snap");
            ok("resume", "snap");
            assertEquals("writeback", jsonMode("snap"));
            assertTrue(
                    Files.readString(dir.resolve("state/snap.device")).contains("cache=writeback"),
                    "recorded with the table");
        }
        try (Daemon d = start(CacheMode.DIRECTSYNC)) {
            assertEquals("writeback", jsonMode("snap"), "as recorded");
            assertEquals("none", jsonMode("vol"), "as recorded, not the new default");
            ok("create", "z", "--table", "0 8 zero");
            assertEquals("directsync", jsonMode("z"), "the new default for a new device");
        }
    }

    @Test
    void aStopCommitsWhatNoFlushDidAndTheRestartShowsIt() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), new byte[1 << 20]);
        Path cow = Files.write(dir.resolve("snap.cow"), new byte[1 << 20]);
        try (Daemon d = start(CacheMode.NONE);
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            ok("create", "vol", "--table", "0 2048 snapshot-origin " + base);
            ok("suspend", "vol");
            ok("create", "snap", "--table", "0 2048 snapshot " + base + " " + cow + " P 8");
            ok("resume", "vol");
            java.lang.foreign.MemorySegment data = arena.allocate(4096, 4096).fill((byte) 0x77);
            d.devices().get("snap").submit(dmsnap.target.IoRequest.write(16, data, false));
            // The exception is deferred: area 0 (chunk 1) is still empty on disk.
            assertEquals(0, java.nio.ByteBuffer.wrap(Files.readAllBytes(cow)).getLong(4096 + 8));
        }
        assertEquals(
                2,
                java.nio.ByteBuffer.wrap(Files.readAllBytes(cow))
                        .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                        .getLong(4096 + 8),
                "the stop committed it: area 0 entry 0 points at COW chunk 2");
        try (Daemon d = start(CacheMode.NONE);
                java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment back = arena.allocate(4096, 4096);
            d.devices().get("snap").submit(dmsnap.target.IoRequest.read(16, back));
            assertEquals(0x77, back.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 4095), "restored with the data");
        }
    }

    @Test
    void snapshotCreateTakesAModeToo() throws Exception {
        Path base = Files.write(dir.resolve("base.img"), new byte[1 << 20]);
        try (Daemon d = start(CacheMode.NONE)) {
            ok("origin", "create", "vol", base.toString());
            ok(
                    "snapshot",
                    "create",
                    "vol",
                    "snap",
                    "--cow",
                    dir.resolve("snap.cow").toString(),
                    "--cow-size",
                    "1M",
                    "--cache",
                    "writeback");
            assertEquals("writeback", jsonMode("snap"));
            ok("snapshot", "refresh", "snap");
            assertEquals("writeback", jsonMode("snap"), "a refresh keeps it");
        }
    }

    @Test
    void anUnknownModeIsAUsageErrorOfTheClient() throws Exception {
        try (Daemon d = start(CacheMode.NONE)) {
            CliRunner r = cli("create", "z", "--cache", "fast", "--table", "0 8 zero");
            assertEquals(ExitCodes.USAGE, r.exitCode());
            assertTrue(r.err().contains("unknown cache mode 'fast' (none, writeback or directsync)"), r.err());
            assertEquals(ExitCodes.NO_DEVICE, cli("info", "z").exitCode(), "nothing was created");
        }
    }

    @Test
    void theDaemonsCacheOptionsAreCheckedBeforeAnythingStarts() {
        for (String[] bad : new String[][] {
            {"--cache", "fast"}, {"--commit-interval", "0"}, {"--commit-interval", "5h"}, {"--commit-interval", "-1s"}
        }) {
            CliRunner r = CliRunner.run("daemon", "--run-dir", run().toString(), bad[0], bad[1]);
            assertEquals(ExitCodes.USAGE, r.exitCode(), String.join(" ", bad) + ": " + r.err());
            assertTrue(r.err().startsWith("dmsnap: "), r.err());
            assertTrue(Files.notExists(run()), "nothing made");
        }
    }

    @Test
    void theCommitIntervalOptionReadsMillisecondsSecondsAndMinutes() {
        DaemonCommand.DurationConverter c = new DaemonCommand.DurationConverter();
        assertEquals(Duration.ofMillis(500), c.convert("500ms"));
        assertEquals(Duration.ofSeconds(5), c.convert("5s"));
        assertEquals(Duration.ofSeconds(2), c.convert("2"));
        assertEquals(Duration.ofMinutes(1), c.convert("1m"));
    }
}
