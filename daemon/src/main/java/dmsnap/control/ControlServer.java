package dmsnap.control;

import dmsnap.ffm.Errno;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Listens on {@code control.sock} (mode 0600): each connection sends one request line and gets
 * one response line ({@code changed}: its extents between two, as the walk finds them; see
 * {@link ChangedStream}). A peer that is neither root nor the daemon's user is refused (SO_PEERCRED)
 * and logged; a request over {@value #MAX_REQUEST_BYTES} bytes, not UTF-8, or garbage gets a
 * one-line error; a client that hangs up or stalls mid-request is dropped; nothing else is
 * affected. One virtual thread per connection.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ControlServer.class);
    static final int MAX_REQUEST_BYTES = 1 << 20;
    /** A client that has not sent its whole request by then is dropped. */
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(30);

    private final Duration requestTimeout;
    private final java.util.concurrent.ScheduledExecutorService timeouts = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().name("dmsnap-control-timeout").daemon(true).unstarted(r));

    private final Path socketPath;
    private final ControlHandler handler;
    private final String daemonUser;
    private final ServerSocketChannel server;
    /** Named, as slf4j-simple prints the thread: a request's log lines can be told from another's. */
    private final ExecutorService connections = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("dmsnap-control-", 1).factory());

    private final AtomicBoolean closed = new AtomicBoolean();
    private final Thread acceptor;

    public ControlServer(Path socketPath, ControlHandler handler) throws IOException {
        this(socketPath, handler, DEFAULT_REQUEST_TIMEOUT);
    }

    /** @param requestTimeout how long a client may take to send its request line */
    public ControlServer(Path socketPath, ControlHandler handler, Duration requestTimeout) throws IOException {
        if (requestTimeout.isNegative() || requestTimeout.isZero()) {
            throw new IllegalArgumentException("request timeout must be positive: " + requestTimeout);
        }
        this.socketPath = socketPath;
        this.handler = handler;
        this.requestTimeout = requestTimeout;
        this.daemonUser = System.getProperty("user.name");
        Files.deleteIfExists(socketPath); // stale: the caller holds the run directory's lock
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socketPath));
        Files.setPosixFilePermissions(socketPath, PosixFilePermissions.fromString("rw-------"));
        acceptor = Thread.ofPlatform().name("dmsnap-control").daemon(true).start(this::acceptLoop);
        log.info("control socket {}", socketPath);
    }

    private void acceptLoop() {
        while (!closed.get()) {
            try {
                SocketChannel client = server.accept();
                connections.submit(() -> serve(client));
            } catch (IOException e) {
                if (!closed.get()) {
                    log.warn("control socket accept failed: {}", e.getMessage());
                }
            }
        }
    }

    private void serve(SocketChannel client) {
        // A client that sends half a request and stalls must not hold its thread forever.
        var timeout = timeouts.schedule(
                () -> {
                    try {
                        client.close();
                    } catch (IOException e) {
                        // Closing an abandoned connection; nothing to report.
                    }
                },
                requestTimeout.toMillis(),
                java.util.concurrent.TimeUnit.MILLISECONDS);
        try (client) {
            UnixDomainPrincipal peer = client.getOption(ExtendedSocketOptions.SO_PEERCRED);
            String user = peer.user().getName();
            String line = null;
            MalformedRequestException malformed = null;
            try {
                line = readLine(client);
            } catch (MalformedRequestException e) {
                malformed = e;
            }
            if (!user.equals("root") && !user.equals(daemonUser)) {
                log.warn(
                        "refused control request from user {} (only root and {} may use {})",
                        user,
                        daemonUser,
                        socketPath);
                answer(
                        client,
                        new ControlResponse.Failure(
                                "connect",
                                Errno.EACCES,
                                "permission denied: user " + user + " may not control this daemon"),
                        malformed);
                return;
            }
            if (malformed != null) {
                log.warn("bad control request: {}", malformed.getMessage());
                answer(client, new ControlResponse.Failure("request", Errno.EINVAL, malformed.getMessage()), malformed);
                return;
            }
            timeout.cancel(false);
            if (line == null) {
                return; // the client hung up before sending a whole request
            }
            ControlRequest request;
            try {
                request = ControlRequest.fromJson(line);
            } catch (IOException e) {
                log.warn("bad control request: {}", e.getMessage());
                write(client, new ControlResponse.Failure("request", Errno.EINVAL, e.getMessage()).toJson());
                return;
            }
            ControlResponse.Failure f = handler.answer(request, Channels.newOutputStream(client));
            if (f != null) {
                log.info("{} {}: {} {}", request.verb(), request.name(), f.errno(), f.reason());
            }
        } catch (IOException | RuntimeException e) {
            log.debug("control connection ended: {}", e.getMessage());
        } finally {
            timeout.cancel(false);
        }
    }

    /** Writes the answer to a request, then reads the rest of a line that was refused unread. */
    private static void answer(SocketChannel client, ControlResponse response, MalformedRequestException malformed)
            throws IOException {
        write(client, response.toJson());
        if (malformed != null && malformed.lineUnread) {
            // The client is still sending: read the rest (until the request timeout at most) so
            // that it finishes its write and reads this answer instead of a broken pipe.
            client.shutdownOutput();
            skipLine(client, malformed.readAhead);
        }
    }

    /** A request line answered with an error without being parsed. */
    private static final class MalformedRequestException extends IOException {
        private static final long serialVersionUID = 1L;
        /** The rest of the line is still to be read (after {@link #readAhead}). */
        final boolean lineUnread;
        /** Bytes read from the socket after the point where the line was refused. */
        final transient ByteBuffer readAhead;

        MalformedRequestException(String message, boolean lineUnread, ByteBuffer readAhead) {
            super(message);
            this.lineUnread = lineUnread;
            this.readAhead = readAhead;
        }
    }

    /** One line of UTF-8, at most {@value #MAX_REQUEST_BYTES} bytes; null when the peer closed first. */
    private static String readLine(SocketChannel client) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(8192);
        java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();
        while (true) {
            buf.clear();
            int n = client.read(buf);
            if (n < 0) {
                return null;
            }
            buf.flip();
            while (buf.hasRemaining()) {
                byte b = buf.get();
                if (b == '\n') {
                    return decode(line.toByteArray());
                }
                line.write(b);
                if (line.size() > MAX_REQUEST_BYTES) {
                    throw new MalformedRequestException(
                            "request longer than " + MAX_REQUEST_BYTES + " bytes", true, buf.slice());
                }
            }
        }
    }

    private static String decode(byte[] line) throws MalformedRequestException {
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .decode(ByteBuffer.wrap(line))
                    .toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new MalformedRequestException("malformed request: not valid UTF-8", false, null);
        }
    }

    /** Reads and drops the rest of a refused line: up to its newline or the client's end. */
    private static void skipLine(SocketChannel client, ByteBuffer readAhead) throws IOException {
        ByteBuffer buf = readAhead;
        while (true) {
            while (buf.hasRemaining()) {
                if (buf.get() == '\n') {
                    return;
                }
            }
            buf = ByteBuffer.allocate(8192);
            if (client.read(buf) < 0) {
                return;
            }
            buf.flip();
        }
    }

    static void write(SocketChannel channel, String json) throws IOException {
        ByteBuffer out = ByteBuffer.wrap((json + "\n").getBytes(StandardCharsets.UTF_8));
        while (out.hasRemaining()) {
            channel.write(out);
        }
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            server.close();
            connections.shutdown();
            timeouts.shutdownNow();
            Files.deleteIfExists(socketPath);
        }
    }
}
