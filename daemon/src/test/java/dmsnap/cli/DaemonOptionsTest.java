package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The daemon's access options that do not go together are usage errors (exit 2), before anything starts. */
class DaemonOptionsTest {
    @TempDir
    Path dir;

    private void usage(String expected, String... options) {
        String[] args = new String[options.length + 3];
        args[0] = "daemon";
        args[1] = "--run-dir";
        args[2] = dir.resolve("run").toString();
        System.arraycopy(options, 0, args, 3, options.length);
        CliRunner r = CliRunner.run(args);
        assertEquals(ExitCodes.USAGE, r.exitCode(), r.err());
        assertEquals("dmsnap: " + expected, r.err().lines().findFirst().orElse(""));
        assertFalse(Files.exists(dir.resolve("run")), "nothing made");
    }

    @Test
    void tlsOptionsThatDoNotGoTogetherAreUsageErrors() {
        usage("--tls=on needs --tls-cert and --tls-key", "--tls=on");
        usage("--tls=require needs --tls-cert and --tls-key", "--tls", "require");
        usage("--tls: 'maybe' is not off, on or require", "--tls=maybe");
        usage("--tls-key needs --tls-cert", "--tls-key", "k.pem");
        usage("--tls-cert needs --tls-key", "--tls-cert", "c.pem");
        usage("--tls-ca needs --tls-cert and --tls-key (the server's own certificate)", "--tls-ca", "ca.pem");
        usage(
                "--tls=off with --tls-cert: leave out one of them",
                "--tls=off",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem");
    }

    @Test
    void theRunAndStateDirectoriesMustBeTwo() {
        usage(
                "--run-dir and --state-dir must be different directories",
                "--state-dir",
                dir.resolve("run").toString());
    }

    @Test
    void aCertificateThatCannotBeReadFailsTheStartWithOneLine() {
        Path cert = dir.resolve("c.pem");
        CliRunner r = CliRunner.run(
                "daemon",
                "--run-dir",
                dir.resolve("run").toString(),
                "--tls-cert",
                cert.toString(),
                "--tls-key",
                dir.resolve("k.pem").toString());
        assertEquals(ExitCodes.FAILED, r.exitCode());
        assertEquals("dmsnap: TLS certificate " + cert + ": no such file\n", r.err());
        assertFalse(Files.exists(dir.resolve("run")));
    }

    @Test
    void theKernelsPermissionDeniedAtConnectIsExit5NotNoDaemon() {
        assertEquals(
                ExitCodes.PERMISSION, connect(new java.net.BindException("Permission denied")), "the JDK's EACCES");
        assertEquals(
                ExitCodes.PERMISSION, connect(new java.nio.file.AccessDeniedException("/run/dmsnap/control.sock")));
        assertEquals(ExitCodes.NO_DAEMON, connect(new java.net.ConnectException("Connection refused")));
        assertEquals(ExitCodes.NO_DAEMON, connect(new java.io.IOException("Permission denied")), "not from a socket");
    }

    private static int connect(java.io.IOException e) {
        return ExitCodes.ofConnect(dmsnap.ffm.Errno.of(e));
    }
}
