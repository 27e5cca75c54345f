package dmsnap.nbd;

import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509KeyManager;

/**
 * Certificates for TLS tests, made with openssl as a user would: a CA, a server certificate it
 * signed (SAN IP:127.0.0.1 and DNS:localhost), a client certificate it signed, and a second CA
 * nobody trusts with a client certificate of its own. PEM files in {@code dir}.
 */
final class TestPki {
    final Path dir;
    final Path caCert;
    final Path serverCert;
    final Path serverKey;
    final Path clientCert;
    final Path clientKey;
    final Path strangerCert;
    final Path strangerKey;

    private TestPki(Path dir) {
        this.dir = dir;
        caCert = dir.resolve("ca-cert.pem");
        serverCert = dir.resolve("server-cert.pem");
        serverKey = dir.resolve("server-key.pem");
        clientCert = dir.resolve("client-cert.pem");
        clientKey = dir.resolve("client-key.pem");
        strangerCert = dir.resolve("stranger-cert.pem");
        strangerKey = dir.resolve("stranger-key.pem");
    }

    /** Makes the files; {@code serverKeyType} is openssl's -newkey argument for the server ("rsa:2048", "ec"). */
    static TestPki create(Path dir, String serverKeyType) throws IOException, InterruptedException {
        TestPki p = new TestPki(Files.createDirectories(dir));
        p.ca("ca");
        p.ca("other-ca");
        p.signed(
                "server",
                serverKeyType,
                "localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n" + "extendedKeyUsage=serverAuth\n",
                "ca");
        p.signed("client", "ec", "dmsnap-test-client", "extendedKeyUsage=clientAuth\n", "ca");
        p.signed("stranger", "ec", "stranger", "extendedKeyUsage=clientAuth\n", "other-ca");
        return p;
    }

    private void ca(String name) throws IOException, InterruptedException {
        openssl(
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                name + "-key.pem",
                "-out",
                name + "-cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=" + name);
    }

    private void signed(String name, String keyType, String cn, String extensions, String ca)
            throws IOException, InterruptedException {
        List<String> req = new ArrayList<>(List.of("req", "-newkey", keyType));
        if (keyType.equals("ec")) {
            req.addAll(List.of("-pkeyopt", "ec_paramgen_curve:prime256v1"));
        }
        req.addAll(List.of("-nodes", "-keyout", name + "-key.pem", "-out", name + ".csr", "-subj", "/CN=" + cn));
        openssl(req.toArray(String[]::new));
        Files.writeString(dir.resolve(name + ".ext"), extensions);
        openssl(
                "x509",
                "-req",
                "-in",
                name + ".csr",
                "-CA",
                ca + "-cert.pem",
                "-CAkey",
                ca + "-key.pem",
                "-CAcreateserial",
                "-out",
                name + "-cert.pem",
                "-days",
                "2",
                "-extfile",
                name + ".ext");
    }

    void openssl(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add("openssl");
        command.addAll(List.of(args));
        Process p;
        try {
            p = new ProcessBuilder(command)
                    .directory(dir.toFile())
                    .redirectErrorStream(true)
                    .start();
        } catch (IOException e) {
            throw new IOException("the TLS tests need openssl (./test.sh installs it): " + e.getMessage(), e);
        }
        String output = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new IOException(String.join(" ", command) + " failed: " + output);
        }
    }

    /** A client context trusting {@code caCert}, presenting {@code cert}/{@code key} when given. */
    static SSLContext clientContext(Path trusted, Path cert, Path key, String... protocols) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("ca", NbdTls.certificates(trusted, "CA").getFirst());
        TrustManagerFactory tm = TrustManagerFactory.getInstance("PKIX");
        tm.init(trust);
        KeyManagerFactory km = null;
        if (cert != null) {
            List<X509Certificate> chain = NbdTls.certificates(cert, "client certificate");
            KeyStore keys = KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            char[] password = "test".toCharArray();
            keys.setKeyEntry(
                    "client",
                    NbdTls.privateKey(key, chain.getFirst().getPublicKey().getAlgorithm()),
                    password,
                    chain.toArray(new X509Certificate[0]));
            km = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            km.init(keys, password);
        }
        SSLContext context = SSLContext.getInstance(protocols.length == 1 ? protocols[0] : "TLS");
        context.init(
                km == null ? null : new KeyManager[] {new Insistent((X509KeyManager) km.getKeyManagers()[0])},
                tm.getTrustManagers(),
                null);
        return context;
    }

    /**
     * Presents its certificate whichever CAs the server names: the JDK's own key manager keeps a
     * certificate of another CA back, and the server would only see no certificate at all.
     */
    private static final class Insistent extends X509ExtendedKeyManager {
        private final X509KeyManager keys;

        Insistent(X509KeyManager keys) {
            this.keys = keys;
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return "client";
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return "client";
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return new String[] {"client"};
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return keys.getCertificateChain(alias);
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return keys.getPrivateKey(alias);
        }
    }

    SSLContext client() throws Exception {
        return clientContext(caCert, null, null);
    }
}
