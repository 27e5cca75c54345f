package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.target.IoRequest;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code dmsnap changed} against an in-process daemon: the plain lines and the {@code --json}
 * document, byte for byte, and the one-line errors with their exit codes.
 */
class ChangedCommandTest {
    @TempDir
    Path dir;

    private VolSnapDaemon rig;

    private CliRunner cli(String... args) {
        return rig.cli(args);
    }

    @BeforeEach
    void start() throws Exception {
        rig = VolSnapDaemon.start(dir);
    }

    @AfterEach
    void stop() {
        rig.close();
    }

    /** Writes {@code bytes} at {@code offset} of the origin device. */
    private void write(long offset, int bytes) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(bytes, 4096).fill((byte) 0x42);
            rig.daemon.devices().get("vol").submit(IoRequest.write(offset >>> 9, data, false));
        }
    }

    @Test
    void theChangedExtentsArePrintedAsLinesAndAsADocument() throws Exception {
        write(4096, 8192);
        write(40960, 4096);
        write(8 * 1024 * 1024 - 4096, 4096); // the last chunk
        CliRunner plain = cli("changed", "snap");
        assertEquals(0, plain.exitCode(), plain.err());
        assertEquals("4096 8192\n40960 4096\n8384512 4096\n", plain.out());
        assertEquals("", plain.err());
        assertEquals(plain.out(), cli("changed", "snap", "vol").out(), "the origin named");
        CliRunner json = cli("changed", "--json", "snap");
        assertEquals(0, json.exitCode(), json.err());
        assertEquals("""
                {
                  "device" : "vol",
                  "since" : "snap",
                  "size" : 8388608,
                  "changedBytes" : 16384,
                  "extents" : [ {
                    "offset" : 4096,
                    "length" : 8192
                  }, {
                    "offset" : 40960,
                    "length" : 4096
                  }, {
                    "offset" : 8384512,
                    "length" : 4096
                  } ]
                }
                """, json.out());
    }

    @Test
    void nothingChangedIsNoLinesAndAnEmptyList() {
        CliRunner plain = cli("changed", "snap");
        assertEquals(0, plain.exitCode(), plain.err());
        assertEquals("", plain.out());
        assertEquals("""
                {
                  "device" : "vol",
                  "since" : "snap",
                  "size" : 8388608,
                  "changedBytes" : 0,
                  "extents" : [ ]
                }
                """, cli("changed", "snap", "--json").out());
    }

    /**
     * A control socket in {@code runDir} that answers one request with {@code answer}, as written,
     * and hangs up: an answer the real daemon gives only when things go wrong mid-way.
     */
    private static Thread scripted(Path runDir, String answer) throws Exception {
        java.nio.file.Files.createDirectories(runDir);
        var server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX);
        server.bind(java.net.UnixDomainSocketAddress.of(runDir.resolve("control.sock")));
        return Thread.ofPlatform().start(() -> {
            try (server;
                    var client = server.accept()) {
                var in = java.nio.ByteBuffer.allocate(4096);
                while (client.read(in) >= 0 && in.get(in.position() - 1) != '\n') {
                    // the request line
                }
                client.write(java.nio.ByteBuffer.wrap(answer.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    @Test
    void aFailureMidAnswerFollowsTheLinesPrintedSoFarAndABrokenAnswerIsAnError() throws Exception {
        String start = "{\"ok\":true,\"lines\":[],\"data\":{\"device\":\"vol\",\"since\":\"snap\",\"size\":8388608}}\n";
        Path elsewhere = dir.resolve("scripted");
        Thread daemon = scripted(
                elsewhere,
                start + "4096 8192\n40960 4096\n"
                        + new dmsnap.control.ControlResponse.Failure(
                                        "changed",
                                        dmsnap.ffm.Errno.EIO,
                                        "no valid snapshot snap of this origin to compare with")
                                .toJson()
                        + "\n");
        CliRunner failed = CliRunner.run("changed", "snap", "vol", "--run-dir", elsewhere.toString());
        daemon.join();
        assertEquals(ExitCodes.ofErrno(dmsnap.ffm.Errno.EIO), failed.exitCode());
        assertEquals("4096 8192\n40960 4096\n", failed.out());
        assertEquals(
                "dmsnap: changed on vol failed: Input/output error\n"
                        + "dmsnap: no valid snapshot snap of this origin to compare with\n",
                failed.err());

        java.nio.file.Files.delete(elsewhere.resolve("control.sock"));
        daemon = scripted(elsewhere, start + "4096 8192\n");
        CliRunner broken = CliRunner.run("changed", "--json", "snap", "vol", "--run-dir", elsewhere.toString());
        daemon.join();
        assertEquals(ExitCodes.FAILED, broken.exitCode());
        assertEquals("", broken.out(), "no half document");
        assertEquals("dmsnap: changed on vol failed: the daemon's answer to changed broke off\n", broken.err());
    }

    @Test
    void aRefusalIsOneErrorAndItsExitCode() {
        for (String json : new String[] {"--json", "--verbose"}) {
            CliRunner unknown = cli("changed", "nope", "vol", json);
            assertEquals(ExitCodes.FAILED, unknown.exitCode());
            assertEquals("", unknown.out());
            assertEquals(
                    "dmsnap: changed on vol failed: Invalid argument\n"
                            + "dmsnap: vol cannot be compared with nope: not a valid snapshot of its origin (these are: snap)\n",
                    unknown.err());
            CliRunner gone = cli("changed", "snap", "gone", json);
            assertEquals("", gone.out());
            assertEquals(
                    "dmsnap: changed on gone failed: No such device or address\n" + "dmsnap: Device gone not found\n",
                    gone.err());
            assertEquals(ExitCodes.ofErrno(dmsnap.ffm.Errno.ENXIO), gone.exitCode());
        }
    }
}
