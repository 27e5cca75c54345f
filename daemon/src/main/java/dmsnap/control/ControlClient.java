package dmsnap.control;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** Sends one request to a daemon's control socket and returns its response (for {@code changed}: reads it as it comes). */
public final class ControlClient {
    private final Path socketPath;

    public ControlClient(Path socketPath) {
        this.socketPath = socketPath;
    }

    public Path socketPath() {
        return socketPath;
    }

    /** @throws IOException the daemon cannot be reached (not running, wrong run dir, permission) */
    public ControlResponse send(ControlRequest request) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socketPath));
            IOException writeFailed = null;
            try {
                ControlServer.write(channel, request.toJson());
            } catch (IOException e) {
                writeFailed = e; // the daemon may have refused the request before reading all of it: read its answer
            }
            ByteBuffer buf = ByteBuffer.allocate(8192);
            java.io.ByteArrayOutputStream response = new java.io.ByteArrayOutputStream();
            try {
                while (channel.read(buf) >= 0) {
                    buf.flip();
                    response.write(buf.array(), 0, buf.limit());
                    buf.clear();
                }
            } catch (IOException e) {
                if (writeFailed == null) {
                    throw e;
                }
            }
            String text = response.toString(StandardCharsets.UTF_8).strip();
            if (text.isEmpty()) {
                throw writeFailed != null
                        ? writeFailed
                        : new IOException("the daemon at " + socketPath + " closed the connection without an answer");
            }
            return ControlResponse.fromJson(text);
        }
    }

    /**
     * Sends a {@code changed} request: its answer goes to {@code into} as it comes ({@link
     * ChangedStream}), the extents never all in memory.
     *
     * @return the daemon's failure (a refusal, before anything went to {@code into}; or one that
     *     ended the walk, after the extents found until then), or null when the answer ended well
     * @throws IOException the daemon cannot be reached, or its answer broke off
     */
    public ControlResponse.Failure changed(ControlRequest request, ChangedExtents into) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socketPath));
            ControlServer.write(channel, request.toJson());
            return ChangedStream.read(Channels.newInputStream(channel), into);
        }
    }
}
