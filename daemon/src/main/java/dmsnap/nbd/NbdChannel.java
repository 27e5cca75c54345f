package dmsnap.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.function.LongSupplier;

/**
 * A client's socket with the deadlines the server's watchdog enforces: a message that has
 * started to arrive (a handshake, an option, the rest of a request header, a write payload)
 * must be complete within the timeout, and a reply must be taken by the client within it;
 * otherwise the watchdog closes the socket, which ends the blocked read or write. Waiting for
 * the first byte of the next request has no deadline: an idle client is a normal client.
 * Deadlines are on the server's clock ({@link NbdServer.Settings#nanoClock()}), which the
 * watchdog reads too.
 *
 * <p>After {@code NBD_OPT_STARTTLS} everything goes through a {@link TlsSession}; until then
 * (and always on a plain connection) reads and writes go straight to the socket, from and into
 * the caller's buffers.
 */
final class NbdChannel implements AutoCloseable {
    private static final long NONE = Long.MAX_VALUE;

    private final SocketChannel socket;
    private final String peer;
    private final long timeoutNanos;
    private final LongSupplier clock;
    /** Null until TLS is started: set by the negotiating thread before the connection's other threads start. */
    private volatile TlsSession tls;

    private volatile long readDeadline = NONE;
    private volatile long writeDeadline = NONE;

    NbdChannel(SocketChannel socket, String peer, long timeoutNanos, LongSupplier clock) {
        this.socket = socket;
        this.peer = peer;
        this.timeoutNanos = timeoutNanos;
        this.clock = clock;
    }

    String peer() {
        return peer;
    }

    /**
     * Starts TLS on this connection (the {@code NBD_REP_ACK} to STARTTLS has been sent) and runs
     * the TLS handshake.
     *
     * @throws IOException the handshake failed; the connection is unusable
     */
    void startTls(javax.net.ssl.SSLEngine engine) throws IOException {
        TlsSession session = new TlsSession(socket, engine, timeoutNanos, clock);
        tls = session;
        session.handshake();
    }

    /** The TLS session, or null on a plain connection. */
    TlsSession tls() {
        return tls;
    }

    private int read(ByteBuffer buffer) throws IOException {
        return tls == null ? socket.read(buffer) : tls.read(buffer);
    }

    /** Starts a message: everything read until {@link #endMessage()} must arrive within the timeout. */
    void startMessage() {
        readDeadline = clock.getAsLong() + timeoutNanos;
    }

    void endMessage() {
        readDeadline = NONE;
    }

    /** Fills {@code buffer}; EOF before it is full is an {@link EOFException}. */
    void readFully(ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (read(buffer) < 0) {
                throw new EOFException("client " + peer + " closed the connection");
            }
        }
    }

    /**
     * Reads the first bytes of the next message with no deadline, then the rest under one.
     *
     * @return false when the client closed the connection cleanly before the message began
     */
    boolean readMessage(ByteBuffer buffer) throws IOException {
        while (buffer.position() == 0) {
            if (read(buffer) < 0) {
                return false;
            }
        }
        startMessage();
        readFully(buffer);
        return true;
    }

    /**
     * Whether the client has sent more, without waiting: what the socket has now goes into
     * {@code buffer} (the start of the next message, which {@link #readMessage} then completes)
     * or, with TLS, into the session. Costs a few system calls (the socket is made non-blocking for
     * one read), so it is for an occasional look, not for every request.
     */
    boolean inputWaiting(ByteBuffer buffer) throws IOException {
        TlsSession session = tls;
        if (session != null) {
            return session.inputWaiting();
        }
        if (buffer.position() > 0) {
            return true;
        }
        socket.configureBlocking(false);
        try {
            return socket.read(buffer) > 0;
        } finally {
            socket.configureBlocking(true);
        }
    }

    /** How a {@link #pollMessage} ended. */
    enum Poll {
        /** The first bytes of the next message are in the buffer. */
        ARRIVED,
        /** Nothing came within the window (or the input ended: the read after says so). */
        NOTHING,
        /** Another thread wanted this CPU: polling would only delay it (and this reader). */
        CPU_WANTED
    }

    /**
     * Polls for the first bytes of the next message for up to {@code windowNanos}, without
     * sleeping (see {@link RequestPolling}): what arrives goes into {@code buffer}, which {@link
     * #readMessage} then completes. Between two looks the thread yields its CPU; a yield that
     * took longer than {@code busyNanos} ran another thread, and the poll ends: on a busy CPU a
     * sleeping reader is woken at once anyway, and polling would only take turns with the work
     * (the client's among it). The socket is non-blocking meanwhile, so the caller must keep every
     * writer out (a blocking write would spin). Not with TLS (its session reads ahead).
     */
    Poll pollMessage(ByteBuffer buffer, long windowNanos, long busyNanos) throws IOException {
        if (tls != null || buffer.position() > 0) {
            return buffer.position() > 0 ? Poll.ARRIVED : Poll.NOTHING;
        }
        socket.configureBlocking(false);
        try {
            long now = System.nanoTime();
            long until = now + windowNanos;
            do {
                int n = socket.read(buffer);
                if (n != 0) {
                    return n > 0 ? Poll.ARRIVED : Poll.NOTHING;
                }
                long before = System.nanoTime();
                Thread.yield();
                now = System.nanoTime();
                if (now - before > busyNanos) {
                    return Poll.CPU_WANTED;
                }
            } while (now - until < 0);
            return Poll.NOTHING;
        } finally {
            try {
                socket.configureBlocking(true);
            } catch (ClosedChannelException e) {
                // Closed meanwhile (the watchdog, a stop): the read after ends the connection.
            }
        }
    }

    /** Skips {@code bytes} bytes of input (an option or payload that is refused) through {@code scratch}. */
    void skip(long bytes, ByteBuffer scratch) throws IOException {
        long left = bytes;
        while (left > 0) {
            scratch.clear().limit((int) Math.min(scratch.capacity(), left));
            readFully(scratch);
            left -= scratch.limit();
        }
    }

    /** Writes all of {@code buffers}, within the timeout. */
    void writeFully(ByteBuffer... buffers) throws IOException {
        writeDeadline = clock.getAsLong() + timeoutNanos;
        try {
            if (tls != null) {
                tls.write(buffers);
                return;
            }
            long left = 0;
            for (ByteBuffer b : buffers) {
                left += b.remaining();
            }
            while (left > 0) {
                left -= socket.write(buffers);
            }
        } finally {
            writeDeadline = NONE;
        }
    }

    /** Watchdog: closes the socket when a message or a reply is overdue; true when it did. */
    boolean closeIfOverdue(long now) {
        long read = readDeadline;
        long write = writeDeadline;
        TlsSession session = tls;
        if ((read != NONE && now - read > 0
                        || write != NONE && now - write > 0
                        || session != null && session.writeOverdue(now))
                && socket.isOpen()) {
            close();
            return true;
        }
        return false;
    }

    /** Whether a deadline runs on this open connection now: a message has begun, or a reply is being sent. */
    boolean deadlineRunning() {
        TlsSession session = tls;
        return socket.isOpen()
                && (readDeadline != NONE || writeDeadline != NONE || session != null && session.writing());
    }

    /** Stops reading: a reader blocked for the next request sees end of input. */
    void shutdownInput() {
        try {
            socket.shutdownInput();
        } catch (IOException e) {
            // Already closed: the reader ends anyway.
        }
    }

    boolean isOpen() {
        return socket.isOpen();
    }

    /**
     * Ends the connection cleanly: with TLS, close_notify first (when the socket takes it within
     * the timeout). Only when no other thread uses the connection any more.
     */
    void finish() {
        TlsSession session = tls;
        if (session != null && socket.isOpen()) {
            try {
                session.closeOutbound();
            } catch (IOException e) {
                // The client left first: nothing to end cleanly.
            }
        }
        close();
    }

    /**
     * Closes the socket at once (also from the watchdog, while other threads block on it). Shut
     * down first: that wakes every thread waiting on the socket through the socket itself, where
     * a close alone counts on the JDK's signal to the blocked thread, and a writer that misses it
     * stays in its write for good, its connection open past the timeout (seen under load).
     */
    @Override
    public void close() {
        try {
            socket.shutdownOutput();
            socket.shutdownInput();
        } catch (IOException e) {
            // Not connected or closed already: nothing blocks on it.
        }
        try {
            socket.close();
        } catch (IOException e) {
            // Closing a client's socket; there is nobody to report to.
        }
    }
}
