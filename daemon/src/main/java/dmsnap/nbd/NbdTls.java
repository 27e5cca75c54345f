package dmsnap.nbd;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's TLS credentials ({@code --tls-cert}, {@code --tls-key}, {@code --tls-ca}): an
 * X.509 certificate chain and its private key in PEM files (PKCS#8, RSA, EC or EdDSA), as
 * openssl writes them; no keystore. With a CA file, clients must present a certificate it
 * signed (verify-peer). Sessions use TLS 1.3 or 1.2 only.
 */
public final class NbdTls {
    private static final Logger log = LoggerFactory.getLogger(NbdTls.class);
    static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    private static final Pattern PEM =
            Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----\\s*([A-Za-z0-9+/=\\s]*?)-----END \\1-----");
    /** Only for the in-memory key store the key manager is made from. */
    private static final char[] IN_MEMORY = "dmsnap".toCharArray();

    /** {@code --tls}: whether TCP clients may (ON) or must (REQUIRE) use TLS, as nbdkit's option. */
    public enum Mode {
        OFF,
        ON,
        REQUIRE;

        /** As the user writes it: off, on, require. */
        public static Mode parse(String text) {
            return switch (text.strip().toLowerCase(java.util.Locale.ROOT)) {
                case "off" -> OFF;
                case "on" -> ON;
                case "require" -> REQUIRE;
                default -> throw new IllegalArgumentException("'" + text + "' is not off, on or require");
            };
        }
    }

    private final SSLContext context;
    private final X509Certificate certificate;
    private final boolean verifyPeer;

    private NbdTls(SSLContext context, X509Certificate certificate, boolean verifyPeer) {
        this.context = context;
        this.certificate = certificate;
        this.verifyPeer = verifyPeer;
    }

    /**
     * Loads the credentials.
     *
     * @param certFile the server's certificate, then any intermediate ones (PEM)
     * @param keyFile  its private key, PKCS#8 PEM ({@code BEGIN PRIVATE KEY}), not encrypted
     * @param caFile   null, or the CA certificates (PEM) client certificates must chain to
     * @throws IOException one line naming the file and what is wrong with it
     */
    public static NbdTls load(Path certFile, Path keyFile, Path caFile) throws IOException {
        List<X509Certificate> chain = certificates(certFile, "TLS certificate");
        X509Certificate leaf = chain.getFirst();
        PrivateKey key = privateKey(keyFile, leaf.getPublicKey().getAlgorithm());
        checkPair(key, leaf, certFile, keyFile);
        warnIfReadableByOthers(keyFile);
        Date now = new Date();
        if (now.after(leaf.getNotAfter()) || now.before(leaf.getNotBefore())) {
            log.warn(
                    "the TLS certificate {} is valid only from {} to {}: clients will refuse it",
                    certFile,
                    leaf.getNotBefore().toInstant(),
                    leaf.getNotAfter().toInstant());
        }
        try {
            KeyStore keys = KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            keys.setKeyEntry("server", key, IN_MEMORY, chain.toArray(new X509Certificate[0]));
            KeyManagerFactory km = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            km.init(keys, IN_MEMORY);
            TrustManagerFactory tm = null;
            if (caFile != null) {
                KeyStore trusted = KeyStore.getInstance("PKCS12");
                trusted.load(null, null);
                int i = 0;
                for (X509Certificate ca : certificates(caFile, "TLS CA certificate")) {
                    trusted.setCertificateEntry("ca" + i++, ca);
                }
                tm = TrustManagerFactory.getInstance("PKIX");
                tm.init(trusted);
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(km.getKeyManagers(), tm == null ? null : tm.getTrustManagers(), null);
            return new NbdTls(context, leaf, caFile != null);
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot set up TLS with " + certFile + " and " + keyFile + ": " + e.getMessage(), e);
        }
    }

    /** A server-side engine for one connection. */
    SSLEngine newEngine() {
        SSLEngine engine = context.createSSLEngine();
        engine.setUseClientMode(false);
        engine.setEnabledProtocols(PROTOCOLS);
        engine.setNeedClientAuth(verifyPeer);
        return engine;
    }

    /** Whether clients must present a certificate the CA signed. */
    public boolean verifiesPeer() {
        return verifyPeer;
    }

    /** For the log: whose certificate, until when, and whether clients need one. */
    public String describe() {
        return certificate.getSubjectX500Principal().getName() + " (valid until "
                + certificate.getNotAfter().toInstant()
                + (verifyPeer ? "; clients must present a certificate of the CA" : "") + ")";
    }

    // ---- PEM ----------------------------------------------------------------------------------------

    private static String read(Path file, String what) throws IOException {
        try {
            return Files.readString(file, StandardCharsets.ISO_8859_1);
        } catch (NoSuchFileException e) {
            throw new IOException(what + " " + file + ": no such file");
        } catch (AccessDeniedException e) {
            throw new IOException(what + " " + file + ": permission denied");
        }
    }

    /** Every certificate in a PEM file, in order. */
    static List<X509Certificate> certificates(Path file, String what) throws IOException {
        String text = read(file, what);
        List<X509Certificate> out = new ArrayList<>();
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            Matcher m = PEM.matcher(text);
            while (m.find()) {
                if (m.group(1).equals("CERTIFICATE")) {
                    Collection<? extends java.security.cert.Certificate> certs =
                            factory.generateCertificates(new ByteArrayInputStream(der(m, file, what)));
                    for (var c : certs) {
                        out.add((X509Certificate) c);
                    }
                }
            }
        } catch (CertificateException e) {
            throw new IOException(what + " " + file + " is not a valid X.509 certificate: " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw new IOException(what + " " + file + " has no PEM certificate (-----BEGIN CERTIFICATE-----)");
        }
        return out;
    }

    /** The PKCS#8 private key in a PEM file, for a certificate whose key is {@code algorithm}. */
    static PrivateKey privateKey(Path file, String algorithm) throws IOException {
        String text = read(file, "TLS key");
        Matcher m = PEM.matcher(text);
        while (m.find()) {
            String type = m.group(1);
            switch (type) {
                case "PRIVATE KEY" -> {
                    try {
                        return KeyFactory.getInstance(algorithm)
                                .generatePrivate(new PKCS8EncodedKeySpec(der(m, file, "TLS key")));
                    } catch (InvalidKeySpecException e) {
                        throw new IOException("TLS key " + file + " is not the " + algorithm
                                + " key the certificate needs: " + e.getMessage());
                    } catch (java.security.NoSuchAlgorithmException e) {
                        throw new IOException("TLS key " + file + ": keys of type " + algorithm + " are not supported");
                    }
                }
                case "ENCRYPTED PRIVATE KEY" ->
                    throw new IOException("TLS key " + file + " is encrypted: give it"
                            + " unencrypted (openssl pkcs8 -topk8 -nocrypt -in " + file
                            + " -out KEY.pem), readable by the"
                            + " daemon's user only");
                case "RSA PRIVATE KEY", "EC PRIVATE KEY" ->
                    throw new IOException("TLS key " + file + " is a " + type
                            + " (PKCS#1/SEC1): convert it to PKCS#8 with openssl pkcs8 -topk8 -nocrypt -in " + file
                            + " -out KEY.pem");
                default -> {} // e.g. EC PARAMETERS before the key
            }
        }
        throw new IOException("TLS key " + file + " has no PEM private key (-----BEGIN PRIVATE KEY-----)");
    }

    private static byte[] der(Matcher m, Path file, String what) throws IOException {
        try {
            return Base64.getMimeDecoder().decode(m.group(2));
        } catch (IllegalArgumentException e) {
            throw new IOException(what + " " + file + ": bad base64 in its " + m.group(1) + " block");
        }
    }

    /** A key that is not the certificate's would fail every handshake, with a message about the handshake. */
    private static void checkPair(PrivateKey key, X509Certificate cert, Path certFile, Path keyFile)
            throws IOException {
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            case "EdDSA", "Ed25519", "Ed448" -> key.getAlgorithm();
            default -> null;
        };
        if (algorithm == null) {
            return; // e.g. RSASSA-PSS: the handshake will tell
        }
        try {
            byte[] probe = "dmsnap key check".getBytes(StandardCharsets.US_ASCII);
            Signature sign = Signature.getInstance(algorithm);
            sign.initSign(key);
            sign.update(probe);
            byte[] signature = sign.sign();
            Signature verify = Signature.getInstance(algorithm);
            verify.initVerify(cert.getPublicKey());
            verify.update(probe);
            if (!verify.verify(signature)) {
                throw new IOException("TLS key " + keyFile + " does not belong to the certificate in " + certFile);
            }
        } catch (GeneralSecurityException e) {
            throw new IOException("TLS key " + keyFile + " does not belong to the certificate in " + certFile + ": "
                    + e.getMessage());
        }
    }

    private static void warnIfReadableByOthers(Path keyFile) {
        try {
            int mode = (Integer) Files.getAttribute(keyFile, "unix:mode");
            if ((mode & 0004) != 0) {
                log.warn(
                        "the TLS key {} can be read by every user (mode {}): chmod o-r it",
                        keyFile,
                        String.format("%04o", mode & 07777));
            }
        } catch (IOException | UnsupportedOperationException e) {
            // Only a hint; the key has been read.
        }
    }
}
