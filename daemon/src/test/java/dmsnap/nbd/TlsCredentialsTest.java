package dmsnap.nbd;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --tls-cert}/{@code --tls-key}/{@code --tls-ca} as openssl writes them: RSA and EC keys
 * load; what cannot be used is refused at start with one line naming the file (a key of another
 * certificate, PKCS#1, an encrypted key, a missing file, a file without the block); and the
 * start-up warning for a TCP listener others can reach.
 */
class TlsCredentialsTest {
    @TempDir
    static Path dir;

    static TestPki rsa;
    static TestPki ec;

    @BeforeAll
    static void certificates() throws Exception {
        rsa = TestPki.create(dir.resolve("rsa"), "rsa:2048");
        ec = TestPki.create(dir.resolve("ec"), "ec");
    }

    private static String refusal(Path cert, Path key, Path ca) {
        return assertThrows(IOException.class, () -> NbdTls.load(cert, key, ca)).getMessage();
    }

    @Test
    void rsaAndEcCertificatesLoad() throws Exception {
        NbdTls r = NbdTls.load(rsa.serverCert, rsa.serverKey, null);
        assertFalse(r.verifiesPeer());
        assertTrue(r.describe().startsWith("CN=localhost (valid until "), r.describe());
        NbdTls e = NbdTls.load(ec.serverCert, ec.serverKey, ec.caCert);
        assertTrue(e.verifiesPeer());
        assertTrue(e.describe().contains("clients must present a certificate of the CA"), e.describe());
        var engine = e.newEngine();
        assertArrayEquals(new String[] {"TLSv1.3", "TLSv1.2"}, engine.getEnabledProtocols());
        assertTrue(engine.getNeedClientAuth());
    }

    @Test
    void whatCannotBeUsedIsRefusedWithOneLineNamingTheFile() throws Exception {
        String wrongType = refusal(rsa.serverCert, rsa.clientKey, null);
        assertTrue(
                wrongType.startsWith("TLS key " + rsa.clientKey + " is not the RSA key the certificate needs"),
                "an EC key for an RSA certificate: " + wrongType);
        assertEquals(
                "TLS key " + ec.clientKey + " does not belong to the certificate in " + ec.serverCert,
                refusal(ec.serverCert, ec.clientKey, null),
                "an EC key of another certificate");

        Path pkcs1 = rsa.dir.resolve("pkcs1-key.pem");
        rsa.openssl("pkey", "-in", rsa.serverKey.toString(), "-traditional", "-out", pkcs1.toString());
        assertTrue(Files.readString(pkcs1).startsWith("-----BEGIN RSA PRIVATE KEY-----"));
        assertTrue(
                refusal(rsa.serverCert, pkcs1, null)
                        .startsWith(
                                "TLS key " + pkcs1
                                        + " is a RSA PRIVATE KEY (PKCS#1/SEC1): convert it to PKCS#8 with openssl pkcs8 -topk8 -nocrypt"));

        Path encrypted = rsa.dir.resolve("encrypted-key.pem");
        rsa.openssl(
                "pkcs8",
                "-topk8",
                "-in",
                rsa.serverKey.toString(),
                "-out",
                encrypted.toString(),
                "-passout",
                "pass:secret");
        assertTrue(refusal(rsa.serverCert, encrypted, null).startsWith("TLS key " + encrypted + " is encrypted"));

        Path missing = dir.resolve("missing.pem");
        assertEquals("TLS certificate " + missing + ": no such file", refusal(missing, rsa.serverKey, null));
        assertEquals("TLS key " + missing + ": no such file", refusal(rsa.serverCert, missing, null));
        assertEquals(
                "TLS certificate " + rsa.serverKey + " has no PEM certificate (-----BEGIN CERTIFICATE-----)",
                refusal(rsa.serverKey, rsa.serverKey, null));
        assertEquals(
                "TLS key " + rsa.serverCert + " has no PEM private key (-----BEGIN PRIVATE KEY-----)",
                refusal(rsa.serverCert, rsa.serverCert, null));
        assertEquals(
                "TLS CA certificate " + rsa.serverKey + " has no PEM certificate (-----BEGIN CERTIFICATE-----)",
                refusal(rsa.serverCert, rsa.serverKey, rsa.serverKey));
        Path garbage = Files.writeString(
                dir.resolve("garbage.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assertTrue(
                refusal(garbage, rsa.serverKey, null)
                        .startsWith("TLS certificate " + garbage + " is not a valid X.509 certificate"),
                refusal(garbage, rsa.serverKey, null));
    }

    @Test
    void aTcpListenerOthersCanReachIsWarnedAboutUnlessTlsKeepsThemOut() throws Exception {
        InetSocketAddress any = new InetSocketAddress("0.0.0.0", 10809);
        NbdTls anonymous = NbdTls.load(rsa.serverCert, rsa.serverKey, null);
        NbdTls verifying = NbdTls.load(rsa.serverCert, rsa.serverKey, rsa.caCert);
        assertEquals(
                "NBD on 0.0.0.0:10809 is reachable from the network; without --tls-cert anyone who can reach it"
                        + " can read and write every device",
                NbdServer.exposureWarning(any, NbdServer.Access.OWNER_ONLY));
        assertEquals(
                "NBD on 0.0.0.0:10809 is reachable from the network; with --tls=on clients may still connect"
                        + " without TLS: anyone who can reach it can read and write every device (--tls=require with --tls-ca"
                        + " keeps them out)",
                NbdServer.exposureWarning(any, new NbdServer.Access(null, verifying, NbdTls.Mode.ON)));
        assertEquals(
                "NBD on 0.0.0.0:10809 is reachable from the network; TLS is required, but without --tls-ca any"
                        + " client that can reach it can read and write every device",
                NbdServer.exposureWarning(any, new NbdServer.Access(null, anonymous, NbdTls.Mode.REQUIRE)));
        assertNull(NbdServer.exposureWarning(any, new NbdServer.Access(null, verifying, NbdTls.Mode.REQUIRE)));
        assertTrue(NbdServer.exposureWarning(new InetSocketAddress("::", 10809), NbdServer.Access.OWNER_ONLY)
                .startsWith("NBD on [0:0:0:0:0:0:0:0]:10809 is reachable"));
        for (String loopback : new String[] {"127.0.0.1", "127.0.0.2", "::1", "localhost"}) {
            assertNull(
                    NbdServer.exposureWarning(new InetSocketAddress(loopback, 10809), NbdServer.Access.OWNER_ONLY),
                    loopback);
        }
    }
}
