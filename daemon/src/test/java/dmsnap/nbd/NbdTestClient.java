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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A small NBD client for tests, with raw access to the wire so tests can also misbehave: the
 * fixed newstyle handshake step by step, requests with any fields, and replies (simple or
 * structured) matched to the lengths of the reads that were sent.
 */
final class NbdTestClient implements AutoCloseable {
    final SocketChannel socket;
    private final Map<Long, Long> readLengths = new HashMap<>();
    private final Map<Long, Long> readOffsets = new HashMap<>();
    /** Structured replies being put together, by cookie: the data so far and the chunks seen. */
    private final Map<Long, Partial> partial = new HashMap<>();

    private static final class Partial {
        byte[] data;
        int chunks;
        int dataChunks;
        int error;
        String message;
        final Map<Integer, int[]> blockStatus = new java.util.TreeMap<>();
    }

    boolean structured;
    long exportSize;
    int transmissionFlags;
    int minimumBlock;
    int preferredBlock;
    int maximumPayload;

    /** One option reply. */
    record OptionReply(int option, int type, byte[] data) {
        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    /**
     * A transmission reply: error 0 means success; data for reads. A structured reply came in
     * {@code chunks} chunks, {@code dataChunks} of them data; a simple reply counts as one chunk.
     */
    record Reply(
            long cookie,
            int error,
            byte[] data,
            String message,
            int chunks,
            int dataChunks,
            Map<Integer, int[]> blockStatus) {
        Reply(long cookie, int error, byte[] data, String message, int chunks, int dataChunks) {
            this(cookie, error, data, message, chunks, dataChunks, Map.of());
        }
    }

    private NbdTestClient(SocketChannel socket) {
        this.socket = socket;
    }

    static NbdTestClient connect(Path socketPath) throws IOException {
        SocketChannel s = SocketChannel.open(StandardProtocolFamily.UNIX);
        s.connect(UnixDomainSocketAddress.of(socketPath));
        return new NbdTestClient(s);
    }

    /** Connects, negotiates (optionally structured replies) and GOes to {@code export}. */
    static NbdTestClient open(Path socketPath, String export, boolean structured) throws IOException {
        NbdTestClient c = connect(socketPath);
        c.greeting();
        c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        if (structured) {
            c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            OptionReply r = c.optionReply();
            if (r.type() != NBD_REP_ACK) {
                throw new IOException("structured replies refused: " + r.type());
            }
            c.structured = true;
        }
        OptionReply end = c.go(NBD_OPT_GO, export, NBD_INFO_BLOCK_SIZE);
        if (end.type() != NBD_REP_ACK) {
            throw new IOException("GO " + export + " refused: 0x" + Integer.toHexString(end.type()) + " " + end.text());
        }
        return c;
    }

    /** Reads the server's greeting; returns the handshake flags. */
    int greeting() throws IOException {
        ByteBuffer b = read(18);
        if (b.getLong() != NBDMAGIC || b.getLong() != IHAVEOPT) {
            throw new IOException("bad greeting");
        }
        return Short.toUnsignedInt(b.getShort());
    }

    void clientFlags(int flags) throws IOException {
        write(ByteBuffer.allocate(4).putInt(flags).flip());
    }

    void option(int option, byte[] data) throws IOException {
        write(ByteBuffer.allocate(16 + data.length)
                .putLong(IHAVEOPT)
                .putInt(option)
                .putInt(data.length)
                .put(data)
                .flip());
    }

    OptionReply optionReply() throws IOException {
        ByteBuffer h = read(20);
        if (h.getLong() != NBD_REP_MAGIC) {
            throw new IOException("bad option reply magic");
        }
        int option = h.getInt();
        int type = h.getInt();
        int length = h.getInt();
        byte[] data = new byte[length];
        read(length).get(data);
        return new OptionReply(option, type, data);
    }

    static byte[] goData(String export, int... infos) {
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + name.length + 2 + 2 * infos.length);
        b.putInt(name.length).put(name).putShort((short) infos.length);
        for (int i : infos) {
            b.putShort((short) i);
        }
        return b.array();
    }

    /** INFO or GO; reads the replies up to the final one, remembering what NBD_REP_INFO said. */
    OptionReply go(int option, String export, int... infos) throws IOException {
        option(option, goData(export, infos));
        while (true) {
            OptionReply r = optionReply();
            if (r.type() != NBD_REP_INFO) {
                return r;
            }
            ByteBuffer d = ByteBuffer.wrap(r.data());
            int info = Short.toUnsignedInt(d.getShort());
            if (info == NBD_INFO_EXPORT) {
                exportSize = d.getLong();
                transmissionFlags = Short.toUnsignedInt(d.getShort());
            } else if (info == NBD_INFO_BLOCK_SIZE) {
                minimumBlock = d.getInt();
                preferredBlock = d.getInt();
                maximumPayload = d.getInt();
            }
        }
    }

    /** LIST_META_CONTEXT or SET_META_CONTEXT's option data: the export name, then the queries. */
    static byte[] metaContextData(String export, String... queries) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        out.writeBytes(ByteBuffer.allocate(4).putInt(name.length).array());
        out.writeBytes(name);
        out.writeBytes(ByteBuffer.allocate(4).putInt(queries.length).array());
        for (String q : queries) {
            byte[] b = q.getBytes(StandardCharsets.UTF_8);
            out.writeBytes(ByteBuffer.allocate(4).putInt(b.length).array());
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    /**
     * Sends a meta context option and reads its replies: "ID NAME" for each NBD_REP_META_CONTEXT,
     * then the final reply's type as "ACK" or "ERROR 0x...".
     */
    List<String> metaContext(int option, byte[] data) throws IOException {
        option(option, data);
        List<String> out = new ArrayList<>();
        while (true) {
            OptionReply r = optionReply();
            if (r.type() != NBD_REP_META_CONTEXT) {
                out.add(r.type() == NBD_REP_ACK ? "ACK" : "ERROR 0x" + Integer.toHexString(r.type()));
                return out;
            }
            ByteBuffer d = ByteBuffer.wrap(r.data());
            int id = d.getInt();
            out.add(id + " " + StandardCharsets.UTF_8.decode(d));
        }
    }

    // ---- transmission ------------------------------------------------------------------------------

    void request(int flags, int type, long cookie, long offset, long length, byte[] payload) throws IOException {
        write(encoded(flags, type, cookie, offset, length, payload));
    }

    /** Requests made by {@link #encoded}, in one socket write: the server finds them all queued at once. */
    void sendTogether(ByteBuffer... requests) throws IOException {
        ByteBuffer all = ByteBuffer.allocate(java.util.Arrays.stream(requests)
                .mapToInt(ByteBuffer::remaining)
                .sum());
        for (ByteBuffer r : requests) {
            all.put(r);
        }
        write(all.flip());
    }

    /** A request, its payload after it, ready to send (a read's reply is then expected). */
    ByteBuffer encoded(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(28 + (payload == null ? 0 : payload.length));
        b.putInt(NBD_REQUEST_MAGIC)
                .putShort((short) flags)
                .putShort((short) type)
                .putLong(cookie)
                .putLong(offset)
                .putInt((int) length);
        if (payload != null) {
            b.put(payload);
        }
        if (type == NBD_CMD_READ) {
            readLengths.put(cookie, length);
            readOffsets.put(cookie, offset);
        }
        return b.flip();
    }

    void sendRead(long cookie, long offset, int length) throws IOException {
        request(0, NBD_CMD_READ, cookie, offset, length, null);
    }

    /**
     * Reads of {@code length} at each of {@code offsets}, cookies {@code firstCookie} on, in one
     * socket write: the server finds them all queued at once.
     */
    void sendReads(long firstCookie, long[] offsets, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(28 * offsets.length);
        for (int i = 0; i < offsets.length; i++) {
            long cookie = firstCookie + i;
            b.putInt(NBD_REQUEST_MAGIC)
                    .putShort((short) 0)
                    .putShort((short) NBD_CMD_READ)
                    .putLong(cookie)
                    .putLong(offsets[i])
                    .putInt(length);
            readLengths.put(cookie, (long) length);
            readOffsets.put(cookie, offsets[i]);
        }
        write(b.flip());
    }

    void sendWrite(long cookie, long offset, byte[] data, boolean fua) throws IOException {
        request(fua ? NBD_CMD_FLAG_FUA : 0, NBD_CMD_WRITE, cookie, offset, data.length, data);
    }

    /** The next reply, whichever request it answers. */
    Reply reply() throws IOException {
        ByteBuffer m = read(4);
        int magic = m.getInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            ByteBuffer h = read(12);
            int error = h.getInt();
            long cookie = h.getLong();
            Long length = readLengths.remove(cookie);
            byte[] data = null;
            if (length != null && error == 0) {
                data = new byte[length.intValue()];
                read(data.length).get(data);
            }
            return new Reply(cookie, error, data, null, 1, data == null ? 0 : 1);
        }
        if (magic != NBD_STRUCTURED_REPLY_MAGIC) {
            throw new IOException("bad reply magic 0x" + Integer.toHexString(magic));
        }
        for (boolean first = true; ; first = false) {
            if (!first && read(4).getInt() != NBD_STRUCTURED_REPLY_MAGIC) {
                throw new IOException("bad structured reply magic in a reply of several chunks");
            }
            ByteBuffer h = read(16);
            int flags = Short.toUnsignedInt(h.getShort());
            int type = Short.toUnsignedInt(h.getShort());
            long cookie = h.getLong();
            int length = h.getInt();
            ByteBuffer payload = read(length);
            Partial p = partial.computeIfAbsent(cookie, c -> new Partial());
            p.chunks++;
            switch (type) {
                case NBD_REPLY_TYPE_OFFSET_DATA -> {
                    p.dataChunks++;
                    long at = payload.getLong() - readOffsets.getOrDefault(cookie, 0L);
                    if (p.data == null) {
                        p.data = new byte
                                [readLengths
                                        .getOrDefault(cookie, (long) length - 8)
                                        .intValue()];
                    }
                    payload.get(p.data, (int) at, length - 8);
                }
                case NBD_REPLY_TYPE_NONE -> {}
                case NBD_REPLY_TYPE_BLOCK_STATUS -> {
                    int id = payload.getInt();
                    int[] descriptors = new int[(length - 4) / 4];
                    payload.asIntBuffer().get(descriptors);
                    if (p.blockStatus.put(id, descriptors) != null) {
                        throw new IOException("two block status chunks for context " + id);
                    }
                }
                case NBD_REPLY_TYPE_ERROR -> {
                    p.error = payload.getInt();
                    byte[] message = new byte[Short.toUnsignedInt(payload.getShort())];
                    payload.get(message);
                    p.message = new String(message, StandardCharsets.UTF_8);
                }
                default -> throw new IOException("unexpected structured reply type " + type);
            }
            if ((flags & NBD_REPLY_FLAG_DONE) == 0) {
                continue; // more chunks of this reply (or of another) follow
            }
            partial.remove(cookie);
            readLengths.remove(cookie);
            readOffsets.remove(cookie);
            return new Reply(
                    cookie, p.error, p.error == 0 ? p.data : null, p.message, p.chunks, p.dataChunks, p.blockStatus);
        }
    }

    byte[] read(long offset, int length) throws IOException {
        sendRead(1, offset, length);
        Reply r = reply();
        if (r.error() != 0) {
            throw new IOException("read failed: " + r.error() + " " + r.message());
        }
        return r.data();
    }

    int write(long offset, byte[] data) throws IOException {
        sendWrite(2, offset, data, false);
        return reply().error();
    }

    int command(int type, int flags, long offset, long length) throws IOException {
        request(flags, type, 3, offset, length, null);
        return reply().error();
    }

    void disconnect() throws IOException {
        request(0, NBD_CMD_DISC, 0, 0, 0, null);
    }

    // ---- raw ---------------------------------------------------------------------------------------

    void write(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            socket.write(b);
        }
    }

    ByteBuffer read(int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        while (b.hasRemaining()) {
            if (socket.read(b) < 0) {
                throw new EOFException("server closed the connection");
            }
        }
        return b.flip();
    }

    /** True when the server has closed the connection (reads end of stream). */
    boolean closedByServer() throws IOException {
        try {
            return socket.read(ByteBuffer.allocate(1)) < 0;
        } catch (IOException e) {
            return true; // reset by the server
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
