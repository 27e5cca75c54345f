package dmsnap.control;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** Sends one request to a daemon's control socket and returns its response. */
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
            ControlServer.write(channel, request.toJson());
            ByteBuffer buf = ByteBuffer.allocate(8192);
            java.io.ByteArrayOutputStream response = new java.io.ByteArrayOutputStream();
            while (channel.read(buf) >= 0) {
                buf.flip();
                response.write(buf.array(), 0, buf.limit());
                buf.clear();
            }
            String text = response.toString(StandardCharsets.UTF_8).strip();
            if (text.isEmpty()) {
                throw new IOException("the daemon at " + socketPath + " closed the connection without an answer");
            }
            return ControlResponse.fromJson(text);
        }
    }
}
