package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * An NBD client over TCP that can start TLS the way clients do (STARTTLS, NBD_REP_ACK, then a
 * TLS handshake on the same connection), with the JDK's SSLSocket: a TLS implementation other
 * than the server's SSLEngine code. Simple replies only.
 */
final class TlsTestClient implements AutoCloseable {
    private final Socket tcp;
    private Socket socket;
    private DataInputStream in;
    private DataOutputStream out;
    long exportSize;
    int transmissionFlags;

    private TlsTestClient(Socket tcp) throws IOException {
        this.tcp = tcp;
        use(tcp);
    }

    private void use(Socket s) throws IOException {
        socket = s;
        in = new DataInputStream(s.getInputStream());
        out = new DataOutputStream(new java.io.BufferedOutputStream(s.getOutputStream(), 1 << 16));
    }

    /** Connects; a {@code receiveBufferBytes} other than 0 fixes the socket's receive buffer (no autotuning). */
    static TlsTestClient connect(InetSocketAddress address, int receiveBufferBytes) throws IOException {
        Socket s = new Socket();
        if (receiveBufferBytes > 0) {
            s.setReceiveBufferSize(receiveBufferBytes);
        }
        s.connect(address);
        return new TlsTestClient(s);
    }

    /** Connects and does the greeting and client flags. */
    static TlsTestClient handshake(InetSocketAddress address) throws IOException {
        return handshake(address, 0);
    }

    static TlsTestClient handshake(InetSocketAddress address, int receiveBufferBytes) throws IOException {
        TlsTestClient c = connect(address, receiveBufferBytes);
        if (c.in.readLong() != NBDMAGIC || c.in.readLong() != IHAVEOPT) {
            throw new IOException("bad greeting");
        }
        c.in.readShort();
        c.out.writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        c.out.flush();
        return c;
    }

    void option(int option, byte[] data) throws IOException {
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    NbdTestClient.OptionReply optionReply() throws IOException {
        if (in.readLong() != NBD_REP_MAGIC) {
            throw new IOException("bad option reply magic");
        }
        int option = in.readInt();
        int type = in.readInt();
        byte[] data = new byte[in.readInt()];
        in.readFully(data);
        return new NbdTestClient.OptionReply(option, type, data);
    }

    /** Sends an option with no data and returns its (single) reply. */
    NbdTestClient.OptionReply ask(int option) throws IOException {
        option(option, new byte[0]);
        return optionReply();
    }

    /** STARTTLS; on NBD_REP_ACK the TLS handshake (server name checked against {@code host}). */
    SSLSocket startTls(SSLContext context, String host) throws IOException {
        NbdTestClient.OptionReply r = ask(NBD_OPT_STARTTLS);
        if (r.type() != NBD_REP_ACK) {
            throw new IOException("STARTTLS refused: 0x" + Integer.toHexString(r.type()) + " " + r.text());
        }
        SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(tcp, host, tcp.getPort(), true);
        SSLParameters parameters = tls.getSSLParameters();
        parameters.setEndpointIdentificationAlgorithm("HTTPS"); // the certificate must name the host
        tls.setSSLParameters(parameters);
        tls.setUseClientMode(true);
        tls.startHandshake();
        use(tls);
        return tls;
    }

    /** GO (or INFO) with no information requests; the final reply. */
    NbdTestClient.OptionReply go(int option, String export) throws IOException {
        option(option, NbdTestClient.goData(export));
        while (true) {
            NbdTestClient.OptionReply r = optionReply();
            if (r.type() != NBD_REP_INFO) {
                return r;
            }
            ByteBuffer d = ByteBuffer.wrap(r.data());
            if (d.getShort() == NBD_INFO_EXPORT) {
                exportSize = d.getLong();
                transmissionFlags = Short.toUnsignedInt(d.getShort());
            }
        }
    }

    void request(int type, long cookie, long offset, int length, byte[] payload) throws IOException {
        out.writeInt(NBD_REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt(length);
        if (payload != null) {
            out.write(payload);
        }
        out.flush();
    }

    /** Reads of {@code length} at each of {@code offsets}, cookies {@code firstCookie} on, sent together. */
    void sendReads(long firstCookie, long[] offsets, int length) throws IOException {
        for (int i = 0; i < offsets.length; i++) {
            out.writeInt(NBD_REQUEST_MAGIC);
            out.writeShort(0);
            out.writeShort(NBD_CMD_READ);
            out.writeLong(firstCookie + i);
            out.writeLong(offsets[i]);
            out.writeInt(length);
        }
        out.flush();
    }

    /** A simple reply's magic, error and cookie; {@code data} (if not null) filled when the error is 0. */
    long[] simpleReply(byte[] data) throws IOException {
        int magic = in.readInt();
        if (magic != NBD_SIMPLE_REPLY_MAGIC) {
            throw new IOException("not a simple reply: magic 0x" + Integer.toHexString(magic));
        }
        int error = in.readInt();
        long cookie = in.readLong();
        if (error == 0 && data != null) {
            in.readFully(data);
        }
        return new long[] {error, cookie};
    }

    byte[] read(long offset, int length) throws IOException {
        request(NBD_CMD_READ, 1, offset, length, null);
        byte[] data = new byte[length];
        long[] r = simpleReply(data);
        if (r[0] != 0) {
            throw new IOException("read failed: " + r[0]);
        }
        return data;
    }

    int write(long offset, byte[] data) throws IOException {
        request(NBD_CMD_WRITE, 2, offset, data.length, data);
        return (int) simpleReply(null)[0];
    }

    void disconnect() throws IOException {
        request(NBD_CMD_DISC, 0, 0, 0, null);
    }

    InputStream input() {
        return in;
    }

    void writeRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /**
     * Reads until the server ends the connection (end of stream, or a reset); true then. What
     * comes before is dropped: e.g. the TLS alert of a failed handshake.
     */
    boolean closedByServer() {
        try {
            while (in.read() >= 0) {
                // drained
            }
            return true;
        } catch (IOException e) {
            return true;
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
        tcp.close();
    }
}
