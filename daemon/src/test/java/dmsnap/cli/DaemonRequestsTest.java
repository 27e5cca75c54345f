package dmsnap.cli;

import dmsnap.control.ControlHandler;
import dmsnap.control.ControlServer;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.target.TargetTypes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The CLI against an in-process control server: what it prints and exits with for the daemon's answers. */
class DaemonRequestsTest {
    @TempDir
    Path runDir;

    @Test
    void aRequestTooLongForTheDaemonPrintsTheDaemonsErrorNotThatItIsUnreachable() throws Exception {
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try (ControlServer server = new ControlServer(new DaemonConfig(runDir, null).controlSocket(),
                new ControlHandler(dm, "test"))) {
            String table = "0 8 zero" + " ".repeat(1 << 20);
            CliRunner r = CliRunner.run("create", "big", "--table", table, "--run-dir", runDir.toString());
            assertEquals("dmsnap: request on big failed: Invalid argument\n"
                    + "dmsnap: request longer than 1048576 bytes\n", r.err());
            assertEquals(ExitCodes.FAILED, r.exitCode());
            assertEquals(List.of(), dm.list());
        }
    }

    /** A COW with a bad header: the second line says the store's reason after the kernel's error. */
    @Test
    void aSnapshotWithACorruptHeaderPrintsTheStoresReason() throws Exception {
        Path base = runDir.resolve("base.img");
        Path cow = runDir.resolve("cow.img");
        Files.write(base, new byte[1 << 20]);
        byte[] header = new byte[1 << 20];
        header[0] = 0x12; // not the SnAp magic, not 0 (a new COW)
        Files.write(cow, header);
        ChunkCopier copier = new ChunkCopier(1, 1 << 20);
        DeviceManager dm = new DeviceManager(SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(),
                copier), new BackingDevices());
        try (ControlServer server = new ControlServer(new DaemonConfig(runDir, null).controlSocket(),
                new ControlHandler(dm, "test"))) {
            CliRunner r = CliRunner.run("create", "snap", "--table", "0 2048 snapshot " + base + " " + cow + " P 8",
                    "--run-dir", runDir.toString());
            assertEquals("dmsnap: reload on snap failed: Invalid argument\n"
                    + "dmsnap: snapshot: Failed to read snapshot metadata: Invalid or corrupt snapshot\n", r.err());
            assertEquals(ExitCodes.FAILED, r.exitCode());
            assertEquals(List.of(), dm.list());
        } finally {
            copier.close();
        }
    }
}
