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
}
