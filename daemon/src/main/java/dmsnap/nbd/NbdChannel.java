package dmsnap.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * A client's socket with the deadlines the server's watchdog enforces: a message that has
 * started to arrive (a handshake, an option, the rest of a request header, a write payload)
 * must be complete within the timeout, and a reply must be taken by the client within it;
 * otherwise the watchdog closes the socket, which ends the blocked read or write. Waiting for
 * the first byte of the next request has no deadline: an idle client is a normal client.
 */
final class NbdChannel implements AutoCloseable {
    private static final long NONE = Long.MAX_VALUE;

    private final SocketChannel socket;
    private final String peer;
    private final long timeoutNanos;
    private volatile long readDeadline = NONE;
    private volatile long writeDeadline = NONE;

    NbdChannel(SocketChannel socket, String peer, long timeoutNanos) {
        this.socket = socket;
        this.peer = peer;
        this.timeoutNanos = timeoutNanos;
    }

    String peer() {
        return peer;
    }

    /** Starts a message: everything read until {@link #endMessage()} must arrive within the timeout. */
    void startMessage() {
        readDeadline = System.nanoTime() + timeoutNanos;
    }

    void endMessage() {
        readDeadline = NONE;
    }

    /** Fills {@code buffer}; EOF before it is full is an {@link EOFException}. */
    void readFully(ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (socket.read(buffer) < 0) {
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
            if (socket.read(buffer) < 0) {
                return false;
            }
        }
        startMessage();
        readFully(buffer);
        return true;
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
        writeDeadline = System.nanoTime() + timeoutNanos;
        try {
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

    /** Watchdog: closes the socket when a message or a reply is overdue. */
    boolean closeIfOverdue(long now) {
        long read = readDeadline;
        long write = writeDeadline;
        if (read != NONE && now - read > 0 || write != NONE && now - write > 0) {
            close();
            return true;
        }
        return false;
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

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException e) {
            // Closing a client's socket; there is nobody to report to.
        }
    }
}
