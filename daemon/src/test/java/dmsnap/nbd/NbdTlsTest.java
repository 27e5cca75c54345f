package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD over TLS (proto.md "TLS support") with the JDK's SSLSocket as the client: STARTTLS, then
 * the negotiation and the transmission over TLS; FORCEDTLS ({@code --tls=require}) refusing every
 * other option with NBD_REP_ERR_TLS_REQD; STARTTLS refused without credentials; client
 * certificates (verify-peer); TLS 1.3 KeyUpdates while requests and replies are in flight; and
 * broken handshakes, which end their connection only. The servers' clocks move only when a test
 * moves them ({@link ManualClock}).
 */
@Timeout(300)
class NbdTlsTest {
    @TempDir
    static Path pkiDir;

    static TestPki pki;

    static final Duration TIMEOUT = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    NbdFixture fx;
    NbdServer server;
    /** The clock of {@link #server}. */
    final ManualClock clock = new ManualClock();

    @BeforeAll
    static void certificates() throws Exception {
        pki = TestPki.create(pkiDir, "rsa:2048");
    }

    @BeforeEach
    void start() throws Exception {
        fx = new NbdFixture(dir, TIMEOUT);
    }

    @AfterEach
    void stop() throws Exception {
        if (server != null) {
            server.close();
        }
        fx.close();
    }

    /** A second server on the fixture's devices, on TCP 127.0.0.1 with {@code mode}. */
    private InetSocketAddress serve(NbdTls.Mode mode, Path ca) throws IOException {
        NbdTls tls = mode == NbdTls.Mode.OFF ? null : NbdTls.load(pki.serverCert, pki.serverKey, ca);
        server = new NbdServer(
                fx.dm,
                dir.resolve("tcp-server.sock"),
                new InetSocketAddress("127.0.0.1", 0),
                null,
                new NbdServer.Settings(TIMEOUT, 64, 4, 64L << 20, clock),
                new NbdServer.Access(null, tls, mode));
        return server.tcpAddress();
    }

    private static byte[] random(int bytes, long seed) {
        byte[] b = new byte[bytes];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static void assertOriginal(byte[] data, long offsetBytes) {
        for (int i = 0; i < data.length; i += 512) {
            assertEquals(NbdFixture.original(offsetBytes + i), data[i], "byte " + (offsetBytes + i));
        }
    }

    @Test
    void requireRefusesEveryOptionButStartTlsThenServesOverTls() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            for (int option : new int[] {NBD_OPT_LIST, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_GO, NBD_OPT_INFO, 12345}) {
                c.option(
                        option,
                        option == NBD_OPT_GO || option == NBD_OPT_INFO ? NbdTestClient.goData("vol") : new byte[0]);
                NbdTestClient.OptionReply r = c.optionReply();
                assertEquals(NBD_REP_ERR_TLS_REQD, r.type(), optionName(option));
                assertEquals(option, r.option());
                assertTrue(r.text().contains("TLS is required"), r.text());
            }
            SSLSocket tls = c.startTls(pki.client(), "127.0.0.1");
            assertEquals("TLSv1.3", tls.getSession().getProtocol());
            NbdTestClient.OptionReply again = c.ask(NBD_OPT_STARTTLS);
            assertEquals(NBD_REP_ERR_INVALID, again.type(), "a second STARTTLS");
            c.option(NBD_OPT_LIST, new byte[0]);
            int servers = 0;
            NbdTestClient.OptionReply r;
            while ((r = c.optionReply()).type() == NBD_REP_SERVER) {
                servers++;
            }
            assertEquals(NBD_REP_ACK, r.type());
            assertEquals(3, servers, "vol, snap and lin, listed over TLS");
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "vol").type());
            assertEquals(NbdFixture.SECTORS * 512L, c.exportSize);

            byte[] data = random(4 << 20, 1);
            assertEquals(0, c.write(1 << 20, data));
            assertArrayEquals(data, c.read(1 << 20, data.length), "4 MiB back over TLS");
            c.disconnect();
            assertTrue(c.closedByServer());
        }
        try (NbdTestClient snap = fx.open("snap", true)) {
            assertOriginal(snap.read(1 << 20, 4 << 20), 1 << 20); // the origin's writes copied out first
        }
        assertEquals(0, server.unexpectedErrors());
    }

    @Test
    void ecAndEd25519ServerKeysServeToo() throws Exception {
        for (String keyType : new String[] {"ec", "ed25519"}) {
            TestPki other = TestPki.create(dir.resolve(keyType), keyType);
            try (NbdServer s = new NbdServer(
                            fx.dm,
                            dir.resolve(keyType + ".sock"),
                            new InetSocketAddress("127.0.0.1", 0),
                            null,
                            new NbdServer.Settings(TIMEOUT, 16, 2, 16L << 20, new ManualClock()),
                            new NbdServer.Access(
                                    null, NbdTls.load(other.serverCert, other.serverKey, null), NbdTls.Mode.REQUIRE));
                    TlsTestClient c = TlsTestClient.handshake(s.tcpAddress())) {
                c.startTls(other.client(), "localhost");
                assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "snap").type(), keyType);
                assertOriginal(c.read(0, 4096), 0);
            }
        }
    }

    /**
     * The reader's look ahead over TLS (see NbdServerTest): queue-depth-1 reads past a look ahead
     * that finds nothing, then two reads sent together, which arrive in one record: the second,
     * already in the session when the first is done inline, is handed on.
     */
    @Test
    void requestsQueuedBehindAnInlineOneAreHandedOnOverTls() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            c.startTls(pki.client(), "127.0.0.1");
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "vol").type());
            int every = NbdConnection.LOOK_AHEAD_EVERY;
            long done;
            do {
                assertOriginal(c.read(4096, 4096), 4096);
                done = server.inlineRequests();
            } while (done < every || (done + 1) % every != 0);
            c.sendReads(10, new long[] {8192, 16384}, 4096);
            byte[] data = new byte[4096];
            assertArrayEquals(new long[] {0, 10}, c.simpleReply(data), "the first, done inline, answered first");
            assertOriginal(data, 8192);
            assertArrayEquals(new long[] {0, 11}, c.simpleReply(data));
            assertOriginal(data, 16384);
            assertEquals(done + 1, server.inlineRequests(), "only the first of the two is done inline");
        }
        assertEquals(0, server.unexpectedErrors());
    }

    @Test
    void exportNameWithoutTlsEndsTheConnectionWhereTlsIsRequired() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            c.option(NBD_OPT_EXPORT_NAME, "vol".getBytes(StandardCharsets.UTF_8));
            assertTrue(c.closedByServer(), "EXPORT_NAME cannot be refused with an error: the server hangs up");
        }
        assertEquals(0, fx.dm.get("vol").info().openCount());
    }

    @Test
    void startTlsWithoutCredentialsIsRefusedByPolicyAndThePlainSessionGoesOn() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.OFF, null);
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            NbdTestClient.OptionReply r = c.ask(NBD_OPT_STARTTLS);
            assertEquals(NBD_REP_ERR_POLICY, r.type());
            assertTrue(r.text().contains("TLS is not offered here"), r.text());
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "snap").type());
            assertOriginal(c.read(8192, 4096), 8192);
        }
    }

    @Test
    void onLetsEachClientChooseAndForgetsWhatWasNegotiatedBeforeTls() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.ON, null);
        try (TlsTestClient plain = TlsTestClient.handshake(address)) {
            assertEquals(NBD_REP_ACK, plain.go(NBD_OPT_GO, "snap").type());
            assertOriginal(plain.read(0, 65536), 0);
        }
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            assertEquals(NBD_REP_ACK, c.ask(NBD_OPT_STRUCTURED_REPLY).type());
            c.startTls(pki.client(), "localhost");
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "snap").type());
            // Structured replies were negotiated in plain text: after TLS they are not in force.
            assertOriginal(c.read(4096, 4096), 4096);
        }
    }

    @Test
    void clientCertificatesAreRequiredWithACa() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, pki.caCert);
        SSLContext anonymous = pki.client();
        SSLContext stranger = TestPki.clientContext(pki.caCert, pki.strangerCert, pki.strangerKey);
        for (SSLContext refused : new SSLContext[] {anonymous, stranger}) {
            try (TlsTestClient c = TlsTestClient.handshake(address)) {
                // TLS 1.3: the client may finish its side before the server refuses its certificate.
                assertThrows(IOException.class, () -> {
                    c.startTls(refused, "127.0.0.1");
                    c.go(NBD_OPT_GO, "vol");
                });
            }
        }
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            c.startTls(TestPki.clientContext(pki.caCert, pki.clientCert, pki.clientKey), "127.0.0.1");
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "snap").type());
            assertOriginal(c.read(0, 4096), 0);
        }
        assertEquals(0, server.unexpectedErrors());
    }

    @Test
    void brokenHandshakesEndTheirConnectionOnly() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        try (TlsTestClient good = TlsTestClient.handshake(address)) {
            good.startTls(pki.client(), "127.0.0.1");
            assertEquals(NBD_REP_ACK, good.go(NBD_OPT_GO, "vol").type());

            try (TlsTestClient plaintext = TlsTestClient.handshake(address)) {
                assertEquals(NBD_REP_ACK, plaintext.ask(NBD_OPT_STARTTLS).type());
                // Options in plain text after the ACK: not TLS, so the handshake fails (no injection).
                plaintext.writeRaw(java.nio.ByteBuffer.allocate(16 + 9)
                        .putLong(IHAVEOPT)
                        .putInt(NBD_OPT_GO)
                        .putInt(9)
                        .putInt(3)
                        .put("vol".getBytes(StandardCharsets.UTF_8))
                        .putShort((short) 0)
                        .array());
                assertTrue(plaintext.closedByServer());
            }
            SSLContext otherCa = TestPki.clientContext(pki.dir.resolve("other-ca-cert.pem"), null, null);
            try (TlsTestClient untrusting = TlsTestClient.handshake(address)) {
                assertThrows(
                        javax.net.ssl.SSLHandshakeException.class, () -> untrusting.startTls(otherCa, "127.0.0.1"));
            }
            try (TlsTestClient wrongName = TlsTestClient.handshake(address)) {
                assertThrows(
                        javax.net.ssl.SSLHandshakeException.class,
                        () -> wrongName.startTls(pki.client(), "10.9.8.7"),
                        "the certificate names 127.0.0.1 and localhost only");
            }
            try (TlsTestClient leaves = TlsTestClient.handshake(address)) {
                assertEquals(NBD_REP_ACK, leaves.ask(NBD_OPT_STARTTLS).type());
            } // and hangs up before its ClientHello

            byte[] data = random(65536, 2);
            assertEquals(0, good.write(0, data), "the connection that was already there goes on");
            assertArrayEquals(data, good.read(0, data.length));
        }
        try (TlsTestClient again = TlsTestClient.handshake(address)) {
            again.startTls(pki.client(), "127.0.0.1");
            assertEquals(NBD_REP_ACK, again.go(NBD_OPT_GO, "snap").type());
            assertOriginal(again.read(0, 4096), 0);
        }
        assertEquals(0, server.unexpectedErrors());
    }

    @Test
    void theWatchdogClosesTlsClientsThatStall() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        List<String> peers = server.openPeers();
        try (TlsTestClient silent = TlsTestClient.handshake(address)) {
            String peer = NbdProbe.newPeer(server, peers);
            assertEquals(NBD_REP_ACK, silent.ask(NBD_OPT_STARTTLS).type());
            NbdProbe.closedAfterTheTimeout(server, clock, TIMEOUT, peer, "no ClientHello");
            assertTrue(silent.closedByServer(), "no ClientHello: closed when the handshake is overdue");
        }
        // A small receive buffer that does not grow: the server's writes block after a few MiB.
        peers = server.openPeers();
        try (TlsTestClient deaf = TlsTestClient.handshake(address, 64 << 10)) {
            String peer = NbdProbe.newPeer(server, peers);
            deaf.startTls(pki.client(), "127.0.0.1");
            assertEquals(NBD_REP_ACK, deaf.go(NBD_OPT_GO, "vol").type());
            for (int i = 0; i < 48; i++) {
                deaf.request(NBD_CMD_READ, i, 0, 1 << 20, null); // and reads no reply until it is closed
            }
            try (TlsTestClient other = TlsTestClient.handshake(address)) {
                other.startTls(pki.client(), "127.0.0.1");
                assertEquals(NBD_REP_ACK, other.go(NBD_OPT_GO, "snap").type());
                assertOriginal(other.read(0, 4096), 0);
            }
            // Replies not taken: closed when a write is overdue (reading now would take them).
            NbdProbe.closedAfterTheTimeout(server, clock, TIMEOUT, peer, "replies not taken over TLS");
            awaitNoConnections();
            assertTrue(deaf.closedByServer());
        }
        assertEquals(0, server.unexpectedErrors());
    }

    /** Waits (at most 120 s) for the server to have closed every connection. */
    private void awaitNoConnections() throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (server.connectionCount() > 0) {
            assertTrue(System.nanoTime() < deadline, server.connectionCount() + " connections still open");
            Thread.sleep(10);
        }
    }

    @Test
    void keyUpdatesWhileRequestsAndRepliesAreInFlight() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        int count = 48;
        int length = 256 << 10;
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            SSLSocket tls = c.startTls(pki.client(), "127.0.0.1");
            assertEquals("TLSv1.3", tls.getSession().getProtocol());
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "lin").type());
            for (int i = 0; i < count / 8; i++) {
                byte[] data = random(length / 4, 100 + i);
                c.request(NBD_CMD_WRITE, i, (long) i * data.length, data.length, data);
            }
            for (int i = 0; i < count / 8; i++) {
                assertEquals(0, c.simpleReply(null)[0]);
            }
            // Reads pipelined with KeyUpdates (each asks the server to update its keys too): the
            // server answers them on its reading thread while its writer sends replies.
            for (int i = 0; i < count; i++) {
                c.request(NBD_CMD_READ, i, (long) (i % 4) * length, length, null);
                if (i % 6 == 0) {
                    tls.startHandshake(); // TLS 1.3: a KeyUpdate
                }
            }
            byte[] whole = new byte[4 * length];
            for (int i = 0; i < count / 8; i++) {
                System.arraycopy(random(length / 4, 100 + i), 0, whole, i * (length / 4), length / 4);
            }
            byte[] data = new byte[length];
            for (int i = 0; i < count; i++) {
                long[] reply = c.simpleReply(data);
                assertEquals(0, reply[0]);
                int at = (int) (reply[1] % 4) * length;
                assertArrayEquals(Arrays.copyOfRange(whole, at, at + length), data, "read " + reply[1]);
            }
        }
        assertEquals(0, server.unexpectedErrors());
    }

    @Test
    void tls12WorksAndItsRenegotiationIsRefused() throws Exception {
        InetSocketAddress address = serve(NbdTls.Mode.REQUIRE, null);
        try (TlsTestClient c = TlsTestClient.handshake(address)) {
            SSLSocket tls = c.startTls(TestPki.clientContext(pki.caCert, null, null, "TLSv1.2"), "127.0.0.1");
            assertEquals("TLSv1.2", tls.getSession().getProtocol());
            assertEquals(NBD_REP_ACK, c.go(NBD_OPT_GO, "snap").type());
            assertOriginal(c.read(0, 65536), 0);
            assertThrows(IOException.class, () -> {
                tls.startHandshake(); // a renegotiation
                c.read(0, 4096);
            });
        }
        try (TlsTestClient again = TlsTestClient.handshake(address)) {
            again.startTls(pki.client(), "127.0.0.1");
            assertEquals(NBD_REP_ACK, again.go(NBD_OPT_GO, "snap").type());
        }
        assertEquals(0, server.unexpectedErrors());
    }
}
