package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.SplittableRandom;

/**
 * A small NBD client that keeps a mix of requests in flight on one connection, as the clients
 * users run do (libnbd, qemu, the kernel): 4 KiB and 64 KiB reads and writes at random aligned
 * offsets, some with FUA, WRITE_ZEROES, and a FLUSH every 64 requests. The launcher's AOT
 * training runs it against an embedded daemon so that the cache holds the classes and method
 * profiles of the I/O path, not only those of a command line.
 *
 * <p>Any error reply or protocol surprise ends it with an {@link IOException}: a training that
 * went wrong must not produce a cache.
 */
public final class NbdLoad {
    /** How one connection is driven. */
    public record Mix(boolean structuredReplies, int depth, long seed) {
        public Mix {
            if (depth < 1) {
                throw new IllegalArgumentException("depth " + depth);
            }
        }
    }

    private static final int BLOCK = 4096;
    private static final int LARGE = 64 << 10;
    private static final int FLUSH_EVERY = 64;

    private final SocketChannel socket;
    private final Mix mix;
    private final SplittableRandom random;
    private final ByteBuffer header = ByteBuffer.allocateDirect(REQUEST_HEADER_BYTES);
    private final ByteBuffer replyHeader = ByteBuffer.allocateDirect(STRUCTURED_REPLY_HEADER_BYTES);
    private final ByteBuffer data = ByteBuffer.allocateDirect(LARGE);
    /** Requests sent and not yet answered, oldest first: {cookie, type, length}. */
    private final ArrayDeque<long[]> inFlight = new ArrayDeque<>();

    private long exportSize;
    private int transmissionFlags;
    private long cookies;

    private NbdLoad(SocketChannel socket, Mix mix) {
        this.socket = socket;
        this.mix = mix;
        this.random = new SplittableRandom(mix.seed());
        for (int i = 0; i < LARGE; i++) {
            data.put(i, (byte) random.nextInt());
        }
    }

    /**
     * Connects to {@code export} on the Unix socket and sends requests until {@code requests}
     * are answered or {@code deadlineNanos} (on {@link System#nanoTime()}) has passed; then
     * flushes and disconnects.
     *
     * @return the number of requests answered
     * @throws IOException the connection failed, a request failed or a reply broke the protocol
     */
    public static long run(Path socketPath, String export, Mix mix, long requests, long deadlineNanos)
            throws IOException {
        try (SocketChannel s = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.connect(UnixDomainSocketAddress.of(socketPath));
            NbdLoad load = new NbdLoad(s, mix);
            load.negotiate(export);
            return load.drive(requests, deadlineNanos);
        }
    }

    // ---- handshake ---------------------------------------------------------------------------------

    private void negotiate(String export) throws IOException {
        ByteBuffer greeting = read(18);
        if (greeting.getLong() != NBDMAGIC || greeting.getLong() != IHAVEOPT) {
            throw new IOException("not an NBD server (greeting)");
        }
        write(ByteBuffer.allocate(4)
                .putInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)
                .flip());
        if (mix.structuredReplies()) {
            option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            expectAck(NBD_OPT_STRUCTURED_REPLY);
        }
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        option(
                NBD_OPT_GO,
                ByteBuffer.allocate(4 + name.length + 2)
                        .putInt(name.length)
                        .put(name)
                        .putShort((short) 0)
                        .array());
        expectAck(NBD_OPT_GO);
        if (exportSize < LARGE) {
            throw new IOException("export " + export + " is smaller than " + LARGE + " bytes");
        }
    }

    private void option(int option, byte[] payload) throws IOException {
        write(ByteBuffer.allocate(16 + payload.length)
                .putLong(IHAVEOPT)
                .putInt(option)
                .putInt(payload.length)
                .put(payload)
                .flip());
    }

    /** Reads option replies up to the ACK; NBD_REP_INFO about the export gives its size and flags. */
    private void expectAck(int option) throws IOException {
        while (true) {
            ByteBuffer h = read(20);
            if (h.getLong() != NBD_REP_MAGIC || h.getInt() != option) {
                throw new IOException("bad reply to " + optionName(option));
            }
            int type = h.getInt();
            ByteBuffer payload = read(h.getInt());
            if (type == NBD_REP_ACK) {
                return;
            }
            if (type != NBD_REP_INFO) {
                throw new IOException(optionName(option) + " refused: 0x" + Integer.toHexString(type));
            }
            if (payload.getShort() == NBD_INFO_EXPORT) {
                exportSize = payload.getLong();
                transmissionFlags = Short.toUnsignedInt(payload.getShort());
            }
        }
    }

    // ---- transmission ------------------------------------------------------------------------------

    private long drive(long requests, long deadlineNanos) throws IOException {
        long answered = 0;
        long sent = 0;
        while (answered < requests && System.nanoTime() - deadlineNanos < 0) {
            while (inFlight.size() < mix.depth() && sent < requests) {
                send(sent++);
            }
            answer();
            answered++;
        }
        while (!inFlight.isEmpty()) {
            answer();
            answered++;
        }
        request(0, NBD_CMD_FLUSH, 0, 0);
        answer();
        request(0, NBD_CMD_DISC, 0, 0);
        inFlight.clear(); // DISC has no reply
        return answered + 1;
    }

    /** The {@code n}th request of the mix. */
    private void send(long n) throws IOException {
        if (n % FLUSH_EVERY == FLUSH_EVERY - 1) {
            request(0, NBD_CMD_FLUSH, 0, 0);
            return;
        }
        int pick = random.nextInt(100);
        int length = pick % 10 == 0 ? LARGE : BLOCK;
        long offset = random.nextLong(exportSize / length) * length;
        if (pick < 55) {
            request(0, NBD_CMD_READ, offset, length);
        } else if (pick < 60 && (transmissionFlags & NBD_FLAG_SEND_WRITE_ZEROES) != 0) {
            request(0, NBD_CMD_WRITE_ZEROES, offset, length);
        } else {
            boolean fua = pick >= 97 && (transmissionFlags & NBD_FLAG_SEND_FUA) != 0;
            request(fua ? NBD_CMD_FLAG_FUA : 0, NBD_CMD_WRITE, offset, length);
        }
    }

    private void request(int flags, int type, long offset, int length) throws IOException {
        long cookie = ++cookies;
        header.clear()
                .putInt(NBD_REQUEST_MAGIC)
                .putShort((short) flags)
                .putShort((short) type)
                .putLong(cookie)
                .putLong(offset)
                .putInt(length)
                .flip();
        write(header);
        if (type == NBD_CMD_WRITE) {
            write(data.clear().limit(length));
        }
        inFlight.add(new long[] {cookie, type, length});
    }

    /** Takes the reply to the oldest request (dmsnap answers a connection's requests in any order: matched by cookie). */
    private void answer() throws IOException {
        readInto(replyHeader.clear().limit(4));
        int magic = replyHeader.getInt(0);
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            readInto(replyHeader.clear().limit(SIMPLE_REPLY_HEADER_BYTES - 4));
            int error = replyHeader.getInt(0);
            long[] request = take(replyHeader.getLong(4));
            if (error != 0) {
                throw new IOException(commandName((int) request[1]) + " failed with NBD error " + error);
            }
            if (request[1] == NBD_CMD_READ) {
                readInto(data.clear().limit((int) request[2]));
            }
            return;
        }
        // Structured: chunks up to the one flagged DONE; read data comes as OFFSET_DATA chunks.
        while (true) {
            if (magic != NBD_STRUCTURED_REPLY_MAGIC) {
                throw new IOException("bad reply magic 0x" + Integer.toHexString(magic));
            }
            readInto(replyHeader.clear().limit(STRUCTURED_REPLY_HEADER_BYTES - 4));
            int flags = Short.toUnsignedInt(replyHeader.getShort(0));
            int type = Short.toUnsignedInt(replyHeader.getShort(2));
            long cookie = replyHeader.getLong(4);
            int length = replyHeader.getInt(12);
            if (type == NBD_REPLY_TYPE_ERROR || (type & (1 << 15)) != 0) {
                throw new IOException("request " + cookie + " failed (structured reply type " + type + ")");
            }
            while (length > 0) {
                int piece = Math.min(length, LARGE);
                readInto(data.clear().limit(piece));
                length -= piece;
            }
            if ((flags & NBD_REPLY_FLAG_DONE) != 0) {
                take(cookie);
                return;
            }
            readInto(replyHeader.clear().limit(4));
            magic = replyHeader.getInt(0);
        }
    }

    private long[] take(long cookie) throws IOException {
        for (var it = inFlight.iterator(); it.hasNext(); ) {
            long[] request = it.next();
            if (request[0] == cookie) {
                it.remove();
                return request;
            }
        }
        throw new IOException("a reply to cookie " + cookie + ", which no request in flight has");
    }

    private ByteBuffer read(int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        readInto(b);
        return b.flip();
    }

    private void readInto(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (socket.read(b) < 0) {
                throw new EOFException("the server closed the connection");
            }
        }
    }

    private void write(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            socket.write(b);
        }
    }
}
