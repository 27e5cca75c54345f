package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.nbd.NbdLoad;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client side of the launcher's AOT training against a real daemon: every connection gets
 * all its requests answered (the count is exact when the time bound is far away), the snapshot
 * took first writes, and a request the daemon fails ends the load with an error instead of a
 * cache trained on errors.
 */
class AotTrainingTest {
    @TempDir
    Path dir;

    private Daemon start() throws IOException {
        return Daemon.start(new DaemonConfig(dir.resolve("run"), dir.resolve("state")), "test");
    }

    @Test
    void everyConnectionHasItsRequestsAnsweredAndTheSnapshotTakesWrites() throws Exception {
        Path work = Files.createDirectory(dir.resolve("work"));
        try (Daemon d = start()) {
            long answered = AotTraining.train(work, dir.resolve("run"), 300, Duration.ofMinutes(5));
            // three connections, each its 300 requests and the closing FLUSH
            assertEquals(3 * 301, answered);
            CliRunner status = CliRunner.run(
                    "status", "snap", "--run-dir", dir.resolve("run").toString());
            assertEquals(0, status.exitCode(), status.err());
            // "0 131072 snapshot ALLOCATED/TOTAL METADATA": writes made exceptions
            String allocated = status.out().trim().split(" ")[3].split("/")[0];
            assertTrue(Long.parseLong(allocated) > 0, status.out());
        }
    }

    @Test
    void aFailedRequestEndsTheLoadWithAnError() throws Exception {
        try (Daemon d = start()) {
            CliRunner create = CliRunner.run(
                    "create",
                    "bad",
                    "--table",
                    "0 2048 error",
                    "--run-dir",
                    dir.resolve("run").toString());
            assertEquals(0, create.exitCode(), create.err());
            Path socket = d.nbd().socketPath();
            long far = System.nanoTime() + Duration.ofMinutes(5).toNanos();
            for (boolean structured : new boolean[] {false, true}) {
                IOException e = assertThrows(
                        IOException.class,
                        () -> NbdLoad.run(socket, "bad", new NbdLoad.Mix(structured, 4, 7), 100, far));
                assertTrue(e.getMessage().contains("failed"), e.getMessage());
            }
            IOException unknown = assertThrows(
                    IOException.class, () -> NbdLoad.run(socket, "nosuch", new NbdLoad.Mix(false, 1, 7), 100, far));
            assertTrue(unknown.getMessage().contains("GO refused"), unknown.getMessage());
        }
    }
}
