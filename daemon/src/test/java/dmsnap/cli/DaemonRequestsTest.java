package dmsnap.cli;

import dmsnap.control.ControlHandler;
import dmsnap.control.ControlServer;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.target.TargetTypes;
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
}
