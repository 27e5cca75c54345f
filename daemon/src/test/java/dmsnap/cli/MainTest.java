package dmsnap.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
    void quickstartSaysItIsNotYetAvailable() {
        CliRunner r = CliRunner.run("quickstart");
        assertEquals(ExitCodes.UNAVAILABLE, r.exitCode());
        assertTrue(r.err().contains("not yet available"), r.err());
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
        for (String command : new String[] {"create", "load", "suspend", "resume", "remove", "status", "table", "info",
                "ls", "daemon", "quickstart", "completion"}) {
            CliRunner r = CliRunner.run(command, "--help");
            assertEquals(0, r.exitCode(), command);
            assertTrue(r.out().contains("Example:"), command + " --help has an example");
        }
    }
}
