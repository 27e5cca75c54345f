package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class MainTest {
    @Test
    void versionNamesTheBuildAndTheBindings() {
        CliRunner r = CliRunner.run("--version");
        assertEquals(0, r.exitCode());
        assertTrue(r.out().startsWith("dmsnap 0.1.0"), r.out());
        assertTrue(r.out().contains("native bindings: generated for Linux amd64"), r.out());
    }

    @Test
    void unknownOptionIsAUsageError() {
        CliRunner r = CliRunner.run("--bogus");
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertTrue(r.err().startsWith("dmsnap: Unknown option: '--bogus'"), r.err());
    }

    @Test
    void noSubcommandPrintsUsage() {
        CliRunner r = CliRunner.run();
        assertEquals(ExitCodes.USAGE, r.exitCode());
        assertTrue(r.err().contains("Usage: dmsnap"), r.err());
    }

    @Test
    void quickstartShowsTheSnapshotKeepingItsDataAndCleansUp(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) {
        java.nio.file.Path folder = tmp.resolve("qs");
        CliRunner r = CliRunner.run("quickstart", folder.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(
                r.out().contains("origin reads: \"dmsnap quickstart: written through the origin after the snapshot\""),
                r.out());
        assertTrue(
                r.out()
                        .contains(
                                "snap reads:   \"dmsnap quickstart: original data\"   <- the snapshot keeps the old data"),
                r.out());
        assertTrue(r.out().contains("snap: 0 131072 snapshot 24/32768 16"), r.out());
        assertTrue(r.out().contains("cleaned up " + folder), r.out());
        assertTrue(!java.nio.file.Files.exists(folder));
        try {
            java.nio.file.Files.writeString(tmp.resolve("keep.txt"), "user data");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        CliRunner again = CliRunner.run("quickstart", tmp.toString());
        assertEquals(ExitCodes.FAILED, again.exitCode(), "a non-empty folder is refused");
    }

    @Test
    void aRefusedDirectoryStopsTheDaemonWithOneLine(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp)
            throws java.io.IOException {
        java.nio.file.Path shared = java.nio.file.Files.createDirectory(tmp.resolve("shared"));
        java.nio.file.Path link = java.nio.file.Files.createSymbolicLink(tmp.resolve("run"), shared);
        CliRunner r = CliRunner.run("daemon", "--run-dir", link.toString());
        assertEquals(ExitCodes.FAILED, r.exitCode());
        assertEquals("dmsnap: run directory " + link + " is a symbolic link: give the real directory\n", r.err());
        CliRunner state =
                CliRunner.run("daemon", "--run-dir", tmp.resolve("run2").toString(), "--state-dir", link.toString());
        assertEquals(ExitCodes.FAILED, state.exitCode());
        assertEquals("dmsnap: state directory " + link + " is a symbolic link: give the real directory\n", state.err());
    }

    @Test
    void completionIsABashScriptCoveringTheCommands() {
        CliRunner r = CliRunner.run("completion");
        assertEquals(0, r.exitCode());
        assertTrue(r.out().startsWith("#!/usr/bin/env bash"), r.out());
        for (String command : new String[] {"daemon", "create", "status", "snapshot", "cow"}) {
            assertTrue(r.out().contains(command), command);
        }
    }

    @Test
    void everyCommandHasHelpWithAnExample() {
        for (String command : new String[] {
            "create",
            "load",
            "suspend",
            "resume",
            "remove",
            "status",
            "table",
            "info",
            "ls",
            "daemon",
            "quickstart",
            "completion"
        }) {
            CliRunner r = CliRunner.run(command, "--help");
            assertEquals(0, r.exitCode(), command);
            assertTrue(
                    r.out().contains("Example:") || r.out().contains("Examples:"), command + " --help has an example");
        }
    }

    @Test
    void aCommandLineBuildsTheVerbItNamesAndEveryVerbWhenItNamesNone() {
        assertEquals(java.util.List.of(CowCommand.class), Main.verbsFor(new String[] {"cow", "check", "/x"}));
        assertEquals(
                java.util.List.of(DeviceCommands.Ls.class),
                Main.verbsFor(new String[] {"--run-dir", "/r", "-v", "--json", "ls"}));
        assertEquals(java.util.List.of(DaemonCommand.class), Main.verbsFor(new String[] {"--run-dir=/r", "daemon"}));
        for (String[] whole : new String[][] {
            {},
            {"--help"},
            {"nosuch", "ls"},
            {"completion"},
            {"--run-dir", "status"},
            {"--", "ls"},
            {"-", "ls"},
            {"--help", "ls"},
            {"-h", "cow"},
            {"-vh", "daemon"}
        }) {
            assertEquals(DmsnapCommand.VERBS, Main.verbsFor(whole), String.join(" ", whole));
        }
    }

    /** What a command line prints and returns with only its verb built, as with every verb. */
    @Test
    void aCommandLineWithItsVerbAloneAnswersAsTheWholeOne() {
        String[][] lines = {
            {"cow", "--help"},
            {"cow", "check", "--help"},
            {"cow", "chek"},
            {"--json", "cow", "check"},
            {"snapshot", "create", "--bogus"},
            {"-v", "status", "a", "b", "c"},
            {"--run-dir", "status"},
            {"daemon", "--cache", "sometimes"},
            {"--bogus", "ls"},
            {"ls", "--help"},
            {"--version", "ls"},
            {"origin"},
            {"--help", "ls"},
            {"-vh", "daemon"},
            {"-v", "--json", "-h", "cow", "check"},
        };
        for (String[] args : lines) {
            java.io.StringWriter out = new java.io.StringWriter();
            java.io.StringWriter err = new java.io.StringWriter();
            int code = Main.commandLine(new java.io.PrintWriter(out, true), new java.io.PrintWriter(err, true))
                    .execute(args);
            CliRunner alone = CliRunner.run(args);
            String line = String.join(" ", args);
            assertEquals(code, alone.exitCode(), line);
            assertEquals(out.toString(), alone.out(), line);
            assertEquals(err.toString(), alone.err(), line);
        }
    }
}
