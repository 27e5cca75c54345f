package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dmsnap.control.ControlHandler;
import dmsnap.control.ControlServer;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.target.TargetTypes;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.BindException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLI against an in-process control server: what it prints and exits with for the daemon's answers. */
class DaemonRequestsTest {
    @TempDir
    Path runDir;

    @Test
    void aRequestTooLongForTheDaemonPrintsTheDaemonsErrorNotThatItIsUnreachable() throws Exception {
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try (ControlServer server =
                new ControlServer(new DaemonConfig(runDir, null).controlSocket(), new ControlHandler(dm, "test"))) {
            String table = "0 8 zero" + " ".repeat(1 << 20);
            CliRunner r = CliRunner.run("create", "big", "--table", table, "--run-dir", runDir.toString());
            assertEquals(
                    "dmsnap: request on big failed: Invalid argument\n" + "dmsnap: request longer than 1048576 bytes\n",
                    r.err());
            assertEquals(ExitCodes.FAILED, r.exitCode());
            assertEquals(List.of(), dm.list());
        }
    }

    /** The one line every verb prints when the daemon's control socket is not this user's. */
    private String refused() {
        return "dmsnap: cannot use the daemon's control socket " + runDir.resolve("control.sock") + " as user "
                + System.getProperty("user.name") + ": Permission denied (only root and the daemon's user may)\n";
    }

    private CliRunner cli(String... args) {
        String[] all = java.util.Arrays.copyOf(args, args.length + 2);
        all[args.length] = "--run-dir";
        all[args.length + 1] = runDir.toString();
        return CliRunner.run(all);
    }

    @Test
    void aUserTheDaemonRefusesGetsOneLineAndExitFiveFromEveryVerb() throws Exception {
        Path base = Files.write(runDir.resolve("base.img"), new byte[4096]);
        String cow = runDir.resolve("snap.cow").toString();
        String[][] verbs = {
            {"create", "x", "--notable"},
            {"ls"},
            {"remove", "x"},
            {"snapshot", "create", "vol", "snap", "--cow", cow, "--cow-size", "1M"},
            {"origin", "create", "vol", base.toString()},
            {"snapshot", "refresh", "snap"},
            {"snapshot", "remove", "snap"},
            {"snapshot", "merge", "snap"},
            {"snapshot", "merge", "--status"},
        };
        try (RefusingDaemon daemon = new RefusingDaemon(new DaemonConfig(runDir, null).controlSocket())) {
            for (String[] verb : verbs) {
                CliRunner r = cli(verb);
                String what = String.join(" ", verb);
                assertEquals(refused(), r.err(), what);
                assertEquals(ExitCodes.PERMISSION, r.exitCode(), what);
                assertEquals("", r.out(), what);
            }
        }
        assertFalse(Files.exists(Path.of(cow)), "snapshot create stopped before it made the COW");
    }

    @Test
    void aSocketTheKernelRefusesIsTheSameLineWithNoAdviceToStartADaemon() {
        // What the JDK throws when connect(2) fails with EACCES on a Unix socket (no errno, strerror's text);
        // the tests run as root, whom the kernel does not refuse.
        StringWriter err = new StringWriter();
        int status = DaemonRequests.cannotConnect(
                new PrintWriter(err, true),
                runDir.resolve("control.sock"),
                runDir,
                new BindException("Permission denied"));
        assertEquals(ExitCodes.PERMISSION, status);
        assertEquals(refused(), err.toString());
    }

    @Test
    void noDaemonAtTheSocketAdvisesStartingOne() throws Exception {
        Path socket = runDir.resolve("control.sock");
        String advice = " (start it with: dmsnap daemon --run-dir " + runDir + ")\n";
        CliRunner missing = cli(
                "snapshot",
                "create",
                "vol",
                "snap",
                "--cow",
                runDir.resolve("c").toString());
        assertEquals(
                "dmsnap: cannot reach the daemon at " + socket + ": No such file or directory" + advice, missing.err());
        assertEquals(ExitCodes.NO_DAEMON, missing.exitCode());
        // A socket file nobody listens on (a daemon that was killed): ECONNREFUSED.
        try (ServerSocketChannel gone = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            gone.bind(UnixDomainSocketAddress.of(socket));
        }
        CliRunner refused = cli("ls");
        assertEquals("dmsnap: cannot reach the daemon at " + socket + ": Connection refused" + advice, refused.err());
        assertEquals(ExitCodes.NO_DAEMON, refused.exitCode());
    }

    @Test
    void aRunDirectoryThatIsAFileIsNotAdvisedToStartADaemonOn() throws Exception {
        Path file = Files.writeString(runDir.resolve("file"), "");
        CliRunner r = CliRunner.run("ls", "--run-dir", file.toString());
        assertEquals(
                "dmsnap: cannot reach the daemon at " + file.resolve("control.sock") + ": Not a directory\n", r.err());
        assertEquals(ExitCodes.NO_DAEMON, r.exitCode());
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
        DeviceManager dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        try (ControlServer server =
                new ControlServer(new DaemonConfig(runDir, null).controlSocket(), new ControlHandler(dm, "test"))) {
            CliRunner r = CliRunner.run(
                    "create",
                    "snap",
                    "--table",
                    "0 2048 snapshot " + base + " " + cow + " P 8",
                    "--run-dir",
                    runDir.toString());
            // The kernel's errno for a bad magic is ENXIO (spec 2.5), dmsetup's "No such device or address".
            assertEquals(
                    "dmsnap: reload on snap failed: No such device or address\n"
                            + "dmsnap: snapshot: Failed to read snapshot metadata: Invalid or corrupt snapshot\n",
                    r.err());
            assertEquals(ExitCodes.NO_DEVICE, r.exitCode());
            assertEquals(List.of(), dm.list());
        } finally {
            copier.close();
        }
    }
}
