package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code snapshot refresh} against an in-process daemon: it says what happened to the exception store. */
class SnapshotRefreshTest {
    @TempDir
    Path dir;

    private Daemon daemon;
    private Path run;
    private Path cow;

    private CliRunner cli(String... args) {
        String[] all = java.util.Arrays.copyOf(args, args.length + 2);
        all[args.length] = "--run-dir";
        all[args.length + 1] = run.toString();
        return CliRunner.run(all);
    }

    private static void sparse(Path file, long bytes) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
    }

    @BeforeEach
    void start() throws Exception {
        run = dir.resolve("run");
        daemon = Daemon.start(new DaemonConfig(run, null), "test");
        Path base = dir.resolve("base.img");
        sparse(base, 8 << 20);
        cow = dir.resolve("snap.cow");
        assertEquals(0, cli("origin", "create", "vol", base.toString()).exitCode());
        CliRunner created = cli("snapshot", "create", "vol", "snap", "--cow", cow.toString(), "--cow-size", "4M");
        assertEquals(0, created.exitCode(), created.err());
    }

    @AfterEach
    void stop() {
        daemon.close();
    }

    @Test
    void aRefreshOfTheLiveCowHandsTheStoreOver() {
        CliRunner r = cli("snapshot", "refresh", "snap");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("resumed snap (exception store handed over)"), r.out());
    }

    @Test
    void aRefreshWhoseCowPathNowNamesAnotherFileHandsNothingOverAndChangesNothing() throws Exception {
        assertEquals(0, cli("status", "snap").exitCode());
        String statusBefore = cli("status", "snap").out();
        // The COW path is swapped to a new file: a reload of the same table would read that one
        // afresh instead of taking over the live store.
        Files.move(cow, dir.resolve("snap.cow.old"));
        sparse(cow, 4 << 20);
        CliRunner r = cli("snapshot", "refresh", "snap");
        assertEquals(ExitCodes.FAILED, r.exitCode(), r.out());
        assertFalse(r.out().contains("handed over"), r.out());
        assertEquals(
                "dmsnap: snap: the reloaded table did not take over the live exception store: its origin "
                        + dir.resolve("base.img").toRealPath() + " or COW " + cow.toRealPath()
                        + " now names another file than"
                        + " the live table's (was one replaced?); cleared the inactive table, snap is unchanged\n",
                r.err());
        assertEquals(statusBefore, cli("status", "snap").out(), "the live snapshot is untouched");
        assertEquals("", cli("table", "--inactive", "snap").out().strip(), "no inactive table left");
    }
}
