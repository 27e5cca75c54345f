package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.ffm.Errno;
import dmsnap.target.TargetTypes;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The control socket with bad and concurrent clients. */
class ControlServerTest {
    @TempDir
    Path dir;

    private DeviceManager dm;
    private ControlServer server;
    private ControlClient client;

    @BeforeEach
    void start() throws Exception {
        dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        server = new ControlServer(dir.resolve("control.sock"), new ControlHandler(dm, "test"));
        client = new ControlClient(dir.resolve("control.sock"));
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
    }

    private String raw(String text) throws Exception {
        return raw(text.getBytes(StandardCharsets.UTF_8));
    }

    private String raw(byte[] request) throws Exception {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(dir.resolve("control.sock")));
            ByteBuffer out = ByteBuffer.wrap(request);
            while (out.hasRemaining()) {
                ch.write(out);
            }
            ch.shutdownOutput(); // the client is done (or hangs up mid-request)
            return readAll(ch);
        }
    }

    @Test
    void garbageUnknownVerbsAndHangupsGetAnErrorAndChangeNothing() throws Exception {
        assertTrue(raw("this is not json\n").contains("malformed request: not JSON"));
        assertTrue(raw("{\"verb\": 5}\n").contains("malformed request: no verb"));
        assertTrue(raw("{\"verb\":\"explode\"}\n").contains("unknown request 'explode'"));
        assertEquals("", raw("{\"verb\":\"ls\""), "a client that hangs up mid-request gets nothing");
        ControlResponse.Success ls =
                assertInstanceOf(ControlResponse.Success.class, client.send(ControlRequest.of("ls", null)));
        assertEquals(List.of("No devices found"), ls.lines());
        assertEquals("{}", ls.data().toString(), "and no device in the JSON");
        ControlResponse missing = client.send(ControlRequest.of("resume", "nope"));
        assertEquals(
                Errno.ENXIO,
                assertInstanceOf(ControlResponse.Failure.class, missing).errno());
        ControlResponse badTable = client.send(
                new ControlRequest("create", "x", "0 10 linear", null, null, false, false, false, false, false));
        assertEquals("reload", ((ControlResponse.Failure) badTable).operation());
        assertEquals("linear: Invalid argument count", ((ControlResponse.Failure) badTable).reason());
        ControlResponse badName =
                client.send(new ControlRequest("create", "a/b", null, null, null, false, false, false, true, false));
        assertEquals(Errno.EINVAL, ((ControlResponse.Failure) badName).errno());
        assertEquals(List.of(), dm.list());
    }

    @Test
    void aRequestOverTheLimitGetsAnErrorReplyAndChangesNothing() throws Exception {
        String table = "0 8 zero" + " ".repeat(ControlServer.MAX_REQUEST_BYTES);
        ControlResponse big =
                client.send(new ControlRequest("create", "big", table, null, null, false, false, false, false, false));
        assertEquals(new ControlResponse.Failure("request", Errno.EINVAL, "request longer than 1048576 bytes"), big);
        byte[] unterminated = new byte[ControlServer.MAX_REQUEST_BYTES + 1];
        java.util.Arrays.fill(unterminated, (byte) 'x');
        assertTrue(raw(unterminated).contains("request longer than 1048576 bytes"), "without a newline too");
        assertEquals(List.of(), dm.list());
        assertInstanceOf(
                ControlResponse.Success.class, client.send(ControlRequest.of("ls", null)), "and the server goes on");
    }

    @Test
    void invalidUtf8GetsAnErrorReplyAndChangesNothing() throws Exception {
        byte[] request = "{\"verb\":\"create\",\"name\":\"a\u00ffb\"}\n".getBytes(StandardCharsets.ISO_8859_1);
        String reply = raw(request);
        ControlResponse.Failure f =
                assertInstanceOf(ControlResponse.Failure.class, ControlResponse.fromJson(reply.strip()));
        assertEquals(Errno.EINVAL, f.errno());
        assertEquals("malformed request: not valid UTF-8", f.reason());
        assertEquals(List.of(), dm.list());
    }

    @Test
    void twentyClientsCreatingAndRemovingAtOnceLeaveAConsistentState() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(20);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int c = 0; c < 20; c++) {
                int id = c;
                futures.add(pool.submit(() -> {
                    for (int i = 0; i < 10; i++) {
                        String name = "dev" + id + "-" + i;
                        ControlResponse created = client.send(new ControlRequest(
                                "create", name, "0 100 zero", null, null, false, false, false, false, false));
                        assertInstanceOf(ControlResponse.Success.class, created, name);
                        if (i % 2 == 0) {
                            assertInstanceOf(
                                    ControlResponse.Success.class, client.send(ControlRequest.of("remove", name)));
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(100, dm.list().size(), "20 clients x 5 kept devices");
        assertEquals(100, dm.list().stream().map(d -> d.minor()).distinct().count(), "distinct minors");
    }

    @Test
    void aClientThatStallsMidRequestHoldsUpNobody() throws Exception {
        try (SocketChannel stalled = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            stalled.connect(UnixDomainSocketAddress.of(dir.resolve("control.sock")));
            stalled.write(ByteBuffer.wrap("{\"verb\":\"ls\"".getBytes(StandardCharsets.UTF_8)));
            assertInstanceOf(
                    ControlResponse.Success.class,
                    client.send(ControlRequest.of("ls", null)),
                    "other clients are served meanwhile");
            stalled.write(ByteBuffer.wrap("}\n".getBytes(StandardCharsets.UTF_8)));
            assertTrue(readAll(stalled).contains("No devices found"), "the stalled request was still being read");
        }
    }

    @Test
    @Timeout(120) // the read below waits for the drop
    void aClientThatStallsMidRequestIsDroppedAtTheRequestTimeout() throws Exception {
        Path socket = dir.resolve("quick.sock");
        try (ControlServer quick = new ControlServer(socket, new ControlHandler(dm, "test"), Duration.ofMillis(100));
                SocketChannel stalled = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            stalled.connect(UnixDomainSocketAddress.of(socket));
            stalled.write(ByteBuffer.wrap("{\"verb\":\"ls\"".getBytes(StandardCharsets.UTF_8)));
            assertEquals("", readAll(stalled), "dropped without an answer");
        }
        assertThrows(
                IllegalArgumentException.class,
                () -> new ControlServer(dir.resolve("zero.sock"), new ControlHandler(dm, "test"), Duration.ZERO));
    }

    /** What the server sends until it closes the connection. */
    private static String readAll(SocketChannel ch) throws Exception {
        ByteBuffer buf = ByteBuffer.allocate(65536);
        StringBuilder sb = new StringBuilder();
        while (ch.read(buf) >= 0) {
            buf.flip();
            sb.append(StandardCharsets.UTF_8.decode(buf));
            buf.clear();
        }
        return sb.toString();
    }
}
