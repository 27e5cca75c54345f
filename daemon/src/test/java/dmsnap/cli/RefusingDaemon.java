package dmsnap.cli;

import dmsnap.control.ControlResponse;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A control socket that answers every request as the daemon answers a peer it refuses by
 * SO_PEERCRED (ControlServer: the user is neither root nor the daemon's): the tests run as one
 * user, so the refusal is played back from its wire form.
 */
final class RefusingDaemon implements AutoCloseable {
    static final ControlResponse.Failure REFUSAL = new ControlResponse.Failure(
            "connect", Errno.EACCES, "permission denied: user mallory may not control this daemon");
    private final ServerSocketChannel server;
    private final Thread acceptor;

    RefusingDaemon(Path socket) throws IOException {
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        acceptor = Thread.ofPlatform().name("refusing-daemon").daemon(true).start(this::serve);
    }

    private void serve() {
        while (server.isOpen()) {
            try (SocketChannel client = server.accept()) {
                readLine(client);
                ByteBuffer answer = ByteBuffer.wrap((REFUSAL.toJson() + "\n").getBytes(StandardCharsets.UTF_8));
                while (answer.hasRemaining()) {
                    client.write(answer);
                }
            } catch (IOException e) {
                // closed by close(), or a client that hung up: either way the next accept says which
            }
        }
    }

    private static void readLine(SocketChannel client) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(8192);
        while (client.read(buf) >= 0) {
            buf.flip();
            while (buf.hasRemaining()) {
                if (buf.get() == '\n') {
                    return;
                }
            }
            buf.clear();
        }
    }

    @Override
    public void close() throws Exception {
        server.close();
        acceptor.join();
    }
}
