package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.control.ControlHandler;
import dmsnap.control.ControlServer;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.target.TargetTypes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The global options (--run-dir, --json, --verbose) work before the verb as after it, as
 * dmsetup's and LVM's do: the same output, exit status and messages in both positions.
 */
class GlobalOptionsTest {
    @TempDir
    Path tmp;

    /** {@code dmsnap GLOBAL... VERB ARGS...} and {@code dmsnap VERB ARGS... GLOBAL...} give the same result. */
    private static void assertSameBeforeAndAfter(List<String> global, String... verbAndArgs) {
        List<String> before = new ArrayList<>(global);
        before.addAll(List.of(verbAndArgs));
        List<String> after = new ArrayList<>(List.of(verbAndArgs));
        after.addAll(global);
        CliRunner b = CliRunner.run(before.toArray(String[]::new));
        CliRunner a = CliRunner.run(after.toArray(String[]::new));
        assertEquals(a, b, "before: " + before + ", after: " + after);
    }

    @Test
    void runDirBeforeTheVerbIsTheSameAsAfterItForEveryDaemonVerb() {
        String run = tmp.resolve("run").toString();
        String[][] verbs = {
            {"ls"},
            {"targets"},
            {"status"},
            {"status", "snap"},
            {"table", "--inactive", "snap"},
            {"info", "snap"},
            {"create", "snap", "--notable"},
            {"suspend", "snap"},
            {"resume", "snap"},
            {"clear", "snap"},
            {"remove", "snap"},
            {"rename", "snap", "snap2"},
            {"snapshot", "refresh", "snap"},
            {"snapshot", "remove", "snap"},
            {"snapshot", "merge", "--status"},
            {"snapshot", "create", "vol", "snap", "--cow", tmp.resolve("cow").toString()},
        };
        for (String[] verb : verbs) {
            CliRunner after = CliRunner.run(concat(verb, "--run-dir", run));
            assertEquals(ExitCodes.NO_DAEMON, after.exitCode(), String.join(" ", verb) + ": " + after.err());
            assertTrue(after.err().contains(run + "/control.sock"), after.err());
            assertSameBeforeAndAfter(List.of("--run-dir", run), verb);
        }
    }

    @Test
    void jsonBeforeTheVerbIsTheSameAsAfterIt() throws Exception {
        Path run = Files.createDirectory(tmp.resolve("run"));
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try (ControlServer server =
                new ControlServer(new DaemonConfig(run, null).controlSocket(), new ControlHandler(dm, "test"))) {
            assertEquals(
                    0,
                    CliRunner.run("--run-dir", run.toString(), "create", "zero", "--table", "0 8 zero")
                            .exitCode());
            CliRunner after = CliRunner.run("ls", "--run-dir", run.toString(), "--json");
            assertEquals(0, after.exitCode(), after.err());
            assertTrue(after.out().startsWith("{"), after.out());
            for (String[] verb : new String[][] {{"ls"}, {"status", "zero"}, {"table", "zero"}, {"info", "zero"}}) {
                assertSameBeforeAndAfter(List.of("--run-dir", run.toString(), "--json"), verb);
                CliRunner mixed =
                        CliRunner.run(concat(concat(new String[] {"--json"}, verb), "--run-dir", run.toString()));
                assertEquals(CliRunner.run(concat(verb, "--json", "--run-dir", run.toString())), mixed);
            }
        }
    }

    @Test
    void jsonBeforeTheOfflineCowVerbs() {
        String cow = tmp.resolve("cow").toString();
        assertEquals(
                0,
                CliRunner.run("cow", "format", cow, "--chunk-size", "8", "--size", "1M")
                        .exitCode());
        assertSameBeforeAndAfter(List.of("--json"), "cow", "dump", cow);
        assertSameBeforeAndAfter(List.of("--json"), "cow", "check", cow);
        assertTrue(CliRunner.run("--json", "cow", "dump", cow).out().startsWith("{"));
    }

    @Test
    void runDirBeforeDaemonIsCheckedAsAfterIt() throws Exception {
        Path shared = Files.createDirectory(tmp.resolve("shared"));
        Path link = Files.createSymbolicLink(tmp.resolve("run"), shared);
        CliRunner before = CliRunner.run("--run-dir", link.toString(), "daemon");
        assertEquals(ExitCodes.FAILED, before.exitCode());
        assertEquals("dmsnap: run directory " + link + " is a symbolic link: give the real directory\n", before.err());
        assertSameBeforeAndAfter(List.of("--run-dir", link.toString()), "daemon");
    }

    @Test
    void anOptionAVerbDoesNotHaveIsAUsageErrorInBothPositions() {
        String cow = tmp.resolve("cow").toString();
        CliRunner after = CliRunner.run("cow", "format", cow, "--chunk-size", "8", "--size", "1M", "--json");
        assertEquals(ExitCodes.USAGE, after.exitCode());
        CliRunner before = CliRunner.run("--json", "cow", "format", cow, "--chunk-size", "8", "--size", "1M");
        assertEquals(ExitCodes.USAGE, before.exitCode());
        assertEquals(
                "dmsnap: option '--json' does not apply to 'dmsnap cow format'\n"
                        + "Try 'dmsnap cow format --help' for more information.\n",
                before.err());
        assertTrue(!Files.exists(tmp.resolve("cow")), "nothing was formatted");
        CliRunner quickstart = CliRunner.run(
                "--run-dir", tmp.toString(), "quickstart", tmp.resolve("qs").toString());
        assertEquals(ExitCodes.USAGE, quickstart.exitCode());
        assertEquals(
                "dmsnap: option '--run-dir' does not apply to 'dmsnap quickstart'\n"
                        + "Try 'dmsnap quickstart --help' for more information.\n",
                quickstart.err());
    }

    @Test
    void anOptionGivenBeforeAndAfterTheVerbIsGivenTwice() {
        CliRunner r = CliRunner.run(
                "--run-dir",
                tmp.resolve("a").toString(),
                "ls",
                "--run-dir",
                tmp.resolve("b").toString());
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertTrue(r.err().startsWith("dmsnap: option '--run-dir' (DIR) should be specified only once\n"), r.err());
        CliRunner after = CliRunner.run(
                "ls",
                "--run-dir",
                tmp.resolve("a").toString(),
                "--run-dir",
                tmp.resolve("b").toString());
        assertEquals(ExitCodes.USAGE, after.exitCode());
        assertEquals(CliRunner.run("ls", "--json", "--json"), CliRunner.run("--json", "ls", "--json"));
    }

    @Test
    void verboseBeforeOrAfterTheVerbPrintsTheStackTrace() {
        String missing = tmp.resolve("missing").toString();
        for (String[] args : new String[][] {
            {"-v", "cow", "dump", missing},
            {"cow", "dump", missing, "-v"},
            {"--verbose", "cow", "dump", missing},
            {"cow", "--verbose", "dump", missing}
        }) {
            CliRunner r = CliRunner.run(args);
            assertEquals(ExitCodes.FAILED, r.exitCode());
            assertTrue(r.err().startsWith("dmsnap: "), r.err());
            assertTrue(r.err().contains("\tat "), String.join(" ", args) + " prints a stack trace: " + r.err());
        }
        CliRunner quiet = CliRunner.run("cow", "dump", missing);
        assertEquals(1, quiet.err().lines().count(), quiet.err());
    }

    @Test
    void topLevelHelpListsTheGlobalOptionsOnce() {
        CliRunner r = CliRunner.run("--help");
        assertEquals(0, r.exitCode());
        for (String option : new String[] {"--run-dir=DIR", "--json", "--verbose"}) {
            Matcher m = Pattern.compile("^ +(-\\w, )?" + Pattern.quote(option) + "\\b", Pattern.MULTILINE)
                    .matcher(r.out());
            int count = 0;
            while (m.find()) {
                count++;
            }
            assertEquals(1, count, option + " in\n" + r.out());
        }
    }

    private static String[] concat(String[] first, String... more) {
        List<String> all = new ArrayList<>(List.of(first));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }
}
