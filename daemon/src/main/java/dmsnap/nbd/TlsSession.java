package dmsnap.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * TLS on a client's blocking socket after {@code NBD_OPT_STARTTLS} (proto.md "TLS support"),
 * through an {@link SSLEngine}. A connection reads on one thread and writes on another, so the
 * two directions have a lock each: {@link #unwrapLock} for taking records off the socket,
 * {@link #wrapLock} for putting them on it. Every socket write happens under {@link #wrapLock}
 * (the engine's own messages too: a TLS 1.3 KeyUpdate answered while reading takes it, if free,
 * after the read side's lock, never the other way round), so the write deadline kept here is
 * one writer's. Renegotiation (TLS 1.2) is refused: it would need the writer to wait for the reader.
 *
 * <p>The negotiation reads the socket exactly option by option, so nothing a client sent after
 * its STARTTLS has been read when the session starts: plaintext sent behind it fails the TLS
 * handshake instead of being taken as an option (an injection).
 */
final class TlsSession {
    private static final long NONE = Long.MAX_VALUE;
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);
    /** Records taken off the socket per read, and wrapped per socket write. */
    private static final int RECORDS_PER_IO = 4;

    private final SocketChannel socket;
    private final SSLEngine engine;
    private final long timeoutNanos;
    /** The server's clock, as for {@link NbdChannel}'s deadlines. */
    private final LongSupplier clock;
    /** Guards {@link #netIn}, {@link #appIn}, {@link #inboundDone} and the engine's unwrap side. */
    private final ReentrantLock unwrapLock = new ReentrantLock();
    /** Guards {@link #netOut}, the engine's wrap side and every socket write. */
    private final ReentrantLock wrapLock = new ReentrantLock();
    /** Records read and not yet unwrapped (read mode). */
    private ByteBuffer netIn;
    /** Plaintext unwrapped and not yet taken (read mode). */
    private ByteBuffer appIn;
    /** Records wrapped and not yet sent. */
    private ByteBuffer netOut;

    private boolean inboundDone;
    /** When the socket write under way must be done by; the watchdog closes the socket past it. */
    private volatile long writeDeadline = NONE;

    TlsSession(SocketChannel socket, SSLEngine engine, long timeoutNanos, LongSupplier clock) {
        this.socket = socket;
        this.engine = engine;
        this.timeoutNanos = timeoutNanos;
        this.clock = clock;
        int packet = engine.getSession().getPacketBufferSize();
        this.netIn = ByteBuffer.allocate(packet * RECORDS_PER_IO).flip();
        this.appIn = ByteBuffer.allocate(engine.getSession().getApplicationBufferSize())
                .flip();
        this.netOut = ByteBuffer.allocate(packet * RECORDS_PER_IO);
    }

    /**
     * The TLS handshake, on the negotiating thread (nothing else uses the socket yet); the
     * caller's read deadline covers it.
     *
     * @throws IOException the handshake failed (bad certificate, no common protocol, not TLS)
     *                     or the client left: the session is unusable
     */
    void handshake() throws IOException {
        try {
            handshakeSteps();
        } catch (SSLException e) {
            sendAlert();
            throw e;
        }
    }

    private void handshakeSteps() throws IOException {
        engine.beginHandshake();
        while (true) {
            switch (engine.getHandshakeStatus()) {
                case NEED_WRAP -> flushHandshake();
                case NEED_TASK -> runTasks();
                case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                    unwrapLock.lock();
                    try {
                        appIn.compact();
                        SSLEngineResult r = engine.unwrap(netIn, appIn);
                        appIn.flip();
                        switch (r.getStatus()) {
                            case BUFFER_UNDERFLOW -> {
                                if (!fill()) {
                                    throw new EOFException("the client closed the connection during the TLS handshake");
                                }
                            }
                            case CLOSED -> throw new SSLException("the client ended TLS during its handshake");
                            case BUFFER_OVERFLOW ->
                                appIn = grow(appIn, engine.getSession().getApplicationBufferSize())
                                        .flip();
                            case OK -> {}
                        }
                    } finally {
                        unwrapLock.unlock();
                    }
                }
                case FINISHED, NOT_HANDSHAKING -> {
                    return;
                }
            }
        }
    }

    /** The negotiated protocol and cipher suite, and the client's certificate if it gave one, for the log. */
    String describe() {
        String client;
        try {
            client = ", client " + engine.getSession().getPeerPrincipal().getName();
        } catch (javax.net.ssl.SSLPeerUnverifiedException e) {
            client = "";
        }
        return engine.getSession().getProtocol() + " " + engine.getSession().getCipherSuite() + client;
    }

    /**
     * Reads plaintext into {@code dst}, blocking until there is some.
     *
     * @return bytes read, or -1 at the end of the client's data (close_notify, or the socket's EOF)
     */
    int read(ByteBuffer dst) throws IOException {
        unwrapLock.lock();
        try {
            while (true) {
                if (appIn.hasRemaining()) {
                    int n = Math.min(appIn.remaining(), dst.remaining());
                    dst.put(dst.position(), appIn, appIn.position(), n);
                    dst.position(dst.position() + n);
                    appIn.position(appIn.position() + n);
                    return n;
                }
                if (inboundDone) {
                    return -1;
                }
                // Room for a whole record: straight into the caller's buffer (a write's payload).
                boolean direct = dst.remaining() >= appIn.capacity();
                ByteBuffer into = direct ? dst : appIn.clear();
                int before = into.position();
                SSLEngineResult r = engine.unwrap(netIn, into);
                if (!direct) {
                    appIn.flip();
                }
                switch (r.getStatus()) {
                    case BUFFER_UNDERFLOW -> {
                        if (!fill()) {
                            return -1; // EOF without close_notify: the same to NBD
                        }
                    }
                    case BUFFER_OVERFLOW ->
                        appIn = grow(appIn, engine.getSession().getApplicationBufferSize())
                                .flip();
                    case CLOSED -> {
                        // close_notify: the client is done. Ours goes out when the connection ends.
                        inboundDone = true;
                        continue;
                    }
                    case OK -> {}
                }
                afterUnwrap(r);
                if (direct && into.position() > before) {
                    return into.position() - before;
                }
            }
        } finally {
            unwrapLock.unlock();
        }
    }

    /**
     * Post-handshake messages met while reading: a TLS 1.3 KeyUpdate is answered (under the
     * write lock, when it is free), a TLS 1.2 renegotiation refused.
     */
    private void afterUnwrap(SSLEngineResult r) throws IOException {
        HandshakeStatus status = r.getHandshakeStatus();
        if (status == HandshakeStatus.NOT_HANDSHAKING || status == HandshakeStatus.FINISHED) {
            return;
        }
        if (!"TLSv1.3".equals(engine.getSession().getProtocol())) {
            throw new SSLException("the client began a TLS renegotiation, which is not supported");
        }
        while (true) {
            switch (engine.getHandshakeStatus()) {
                case NEED_TASK -> runTasks();
                case NEED_WRAP -> {
                    // The KeyUpdate in answer. While the writer sends, its next record carries it
                    // first (RFC 8446 4.6.3 asks no more): the reader never waits for the writer.
                    if (!wrapLock.tryLock()) {
                        return;
                    }
                    try {
                        flushHandshake();
                    } finally {
                        wrapLock.unlock();
                    }
                }
                case NOT_HANDSHAKING, FINISHED -> {
                    return;
                }
                default ->
                    throw new SSLException(
                            "unexpected TLS state " + engine.getHandshakeStatus() + " after a post-handshake message");
            }
        }
    }

    /** Writes all of {@code srcs} as TLS records. */
    void write(ByteBuffer... srcs) throws IOException {
        wrapLock.lock();
        try {
            while (remaining(srcs)) {
                netOut.clear();
                // Several records per socket write: a 1 MiB reply is 64 records.
                while (remaining(srcs)
                        && netOut.remaining() >= engine.getSession().getPacketBufferSize()) {
                    SSLEngineResult r = engine.wrap(srcs, netOut);
                    if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                        throw new SSLException("the TLS session is closed");
                    }
                    if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) {
                        if (netOut.position() > 0) {
                            break; // send what is there, then go on with an empty buffer
                        }
                        netOut = larger(netOut);
                        continue;
                    }
                    if (r.getHandshakeStatus() == HandshakeStatus.NEED_TASK) {
                        runTasks();
                    }
                    if (r.bytesConsumed() == 0 && r.bytesProduced() == 0) {
                        // Only a handshake message from the client would let it go on (renegotiation).
                        throw new SSLException("TLS cannot send now: " + engine.getHandshakeStatus());
                    }
                }
                send(netOut.flip());
            }
        } finally {
            wrapLock.unlock();
        }
    }

    /**
     * Ends the session cleanly: close_notify, as the protocol asks of the server at
     * {@code NBD_CMD_DISC} and {@code NBD_OPT_ABORT}. Only when no other thread uses the socket.
     */
    void closeOutbound() throws IOException {
        wrapLock.lock();
        try {
            engine.closeOutbound();
            for (int i = 0; i < 4 && !engine.isOutboundDone(); i++) {
                netOut.clear();
                engine.wrap(EMPTY, netOut);
                send(netOut.flip());
            }
        } finally {
            wrapLock.unlock();
        }
    }

    /** After a failed handshake: the alert that says why, if the engine has one and the socket takes it. */
    private void sendAlert() {
        try {
            engine.closeOutbound();
            flushHandshake();
        } catch (IOException e) {
            // The client is told nothing more; the handshake's own failure is what gets reported.
        }
    }

    /** Whether a socket write has been under way past its deadline (the watchdog then closes the socket). */
    boolean writeOverdue(long now) {
        long deadline = writeDeadline;
        return deadline != NONE && now - deadline > 0;
    }

    /** Whether a socket write is under way (its deadline runs). */
    boolean writing() {
        return writeDeadline != NONE;
    }

    /** Sends the engine's own messages (handshake, KeyUpdate) while it has any. */
    private void flushHandshake() throws IOException {
        wrapLock.lock();
        try {
            while (engine.getHandshakeStatus() == HandshakeStatus.NEED_WRAP) {
                netOut.clear();
                SSLEngineResult r = engine.wrap(EMPTY, netOut);
                if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) {
                    netOut = larger(netOut);
                    continue;
                }
                send(netOut.flip());
                if (r.bytesProduced() == 0 && engine.getHandshakeStatus() == HandshakeStatus.NEED_WRAP) {
                    throw new SSLException("TLS has a message to send and produces none");
                }
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                    // An alert went out (the handshake failed); the exception that follows says why.
                    throw new SSLException("TLS closed during the handshake");
                }
            }
        } finally {
            wrapLock.unlock();
        }
    }

    /** Under {@link #wrapLock}: writes {@code data} whole, within the timeout. */
    private void send(ByteBuffer data) throws IOException {
        writeDeadline = clock.getAsLong() + timeoutNanos;
        try {
            while (data.hasRemaining()) {
                socket.write(data);
            }
        } finally {
            writeDeadline = NONE;
        }
    }

    /**
     * Whether the client has sent anything not yet read as plaintext, without waiting: what the
     * socket has now is taken into the session (a later {@link #read} finds it).
     */
    boolean inputWaiting() throws IOException {
        unwrapLock.lock();
        try {
            if (appIn.hasRemaining() || netIn.hasRemaining()) {
                return true;
            }
            if (inboundDone) {
                return false;
            }
            socket.configureBlocking(false);
            try {
                netIn.compact();
                int n;
                try {
                    n = socket.read(netIn);
                } finally {
                    netIn.flip();
                }
                return n > 0;
            } finally {
                socket.configureBlocking(true);
            }
        } finally {
            unwrapLock.unlock();
        }
    }

    /** Under {@link #unwrapLock}: reads more records; false at EOF. */
    private boolean fill() throws IOException {
        netIn.compact();
        if (!netIn.hasRemaining()) {
            netIn = grow(netIn.flip(), engine.getSession().getPacketBufferSize());
        }
        int n = socket.read(netIn);
        netIn.flip();
        return n >= 0;
    }

    private void runTasks() {
        Runnable task;
        while ((task = engine.getDelegatedTask()) != null) {
            task.run();
        }
    }

    /** An empty buffer larger than {@code b} by a record (write mode). */
    private ByteBuffer larger(ByteBuffer b) {
        return ByteBuffer.allocate(b.capacity() + engine.getSession().getPacketBufferSize());
    }

    /** A buffer {@code extra} bytes larger with {@code b}'s content (read mode in, write mode out). */
    private static ByteBuffer grow(ByteBuffer b, int extra) {
        ByteBuffer bigger = ByteBuffer.allocate(b.capacity() + extra);
        bigger.put(b);
        return bigger;
    }

    private static boolean remaining(ByteBuffer[] buffers) {
        for (ByteBuffer b : buffers) {
            if (b.hasRemaining()) {
                return true;
            }
        }
        return false;
    }
}
