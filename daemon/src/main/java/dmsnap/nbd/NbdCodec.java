package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The wire encoding of the transmission phase (spec "Transmission"): the request header, the
 * simple reply, and the structured reply chunks the server sends ({@code OFFSET_DATA} and
 * {@code ERROR}). Big-endian, as every NBD integer. Pure: it fills and reads {@link ByteBuffer}s
 * and never touches a socket; the constants are {@link NbdProtocol}'s.
 *
 * <p>The reply encoders each clear {@code head}, put one header and flip it, ready to be written
 * (a read's data goes out after it from its own buffer, gathered in the same write).
 */
final class NbdCodec {
    /**
     * Room for any reply header the server sends: the longest is an error chunk with a message
     * of {@link NbdProtocol#MAX_STRING_BYTES} (a 32-bit error and a 16-bit message length before it).
     */
    static final int REPLY_HEAD_BYTES = STRUCTURED_REPLY_HEADER_BYTES + 6 + MAX_STRING_BYTES;

    private NbdCodec() {}

    /**
     * Reads a request header ({@link NbdProtocol#REQUEST_HEADER_BYTES} bytes from the position of
     * {@code header}).
     *
     * @throws IOException the magic is not {@code NBD_REQUEST_MAGIC}: the framing is lost, and the
     *         connection with it
     */
    static NbdRequest decodeRequest(ByteBuffer header) throws IOException {
        int magic = header.getInt();
        if (magic != NBD_REQUEST_MAGIC) {
            throw new IOException("bad request magic 0x" + Integer.toHexString(magic));
        }
        return new NbdRequest(
                Short.toUnsignedInt(header.getShort()),
                Short.toUnsignedInt(header.getShort()),
                header.getLong(),
                header.getLong(),
                Integer.toUnsignedLong(header.getInt()));
    }

    /**
     * Whether the reply to {@code r} is a simple reply: always without structured replies; with
     * them, a success of anything but a read or block status (a read's data goes in {@code
     * OFFSET_DATA} chunks, block status in {@code BLOCK_STATUS} ones, and an error in an {@code
     * ERROR} chunk, which carries its message).
     */
    static boolean simpleReply(boolean structured, NbdRequest r, int error) {
        return !structured || r.type() != NBD_CMD_READ && r.type() != NBD_CMD_BLOCK_STATUS && error == 0;
    }

    /** A simple reply header; a successful read's data follows it. */
    static ByteBuffer putSimpleReply(ByteBuffer head, int error, long cookie) {
        head.clear();
        return head.putInt(NBD_SIMPLE_REPLY_MAGIC).putInt(error).putLong(cookie).flip();
    }

    /**
     * The header of an {@code OFFSET_DATA} chunk for {@code dataBytes} bytes read at
     * {@code offsetBytes}, which follow it; {@code done} when it is the reply's last chunk.
     */
    static ByteBuffer putOffsetData(ByteBuffer head, boolean done, long cookie, long offsetBytes, long dataBytes) {
        head.clear();
        return head.putInt(NBD_STRUCTURED_REPLY_MAGIC)
                .putShort((short) (done ? NBD_REPLY_FLAG_DONE : 0))
                .putShort((short) NBD_REPLY_TYPE_OFFSET_DATA)
                .putLong(cookie)
                .putInt((int) (8 + dataBytes))
                .putLong(offsetBytes)
                .flip();
    }

    /** Bytes of a {@code BLOCK_STATUS} chunk before its descriptors: the reply header and the context id. */
    static final int BLOCK_STATUS_HEAD_BYTES = STRUCTURED_REPLY_HEADER_BYTES + 4;

    /**
     * A {@code BLOCK_STATUS} chunk: the context's id, then {@code count} descriptors (length,
     * status flags; big-endian ints) that {@code chunk} holds from {@link #BLOCK_STATUS_HEAD_BYTES}
     * on; {@code done} when it is the reply's last chunk. The header goes into the bytes before
     * them, and the chunk is sent from that array as it is (a buffer over it, flipped).
     */
    static ByteBuffer blockStatus(long cookie, boolean done, int contextId, byte[] chunk, int count) {
        ByteBuffer b = ByteBuffer.wrap(chunk, 0, BLOCK_STATUS_HEAD_BYTES + 8 * count);
        b.putInt(NBD_STRUCTURED_REPLY_MAGIC)
                .putShort((short) (done ? NBD_REPLY_FLAG_DONE : 0))
                .putShort((short) NBD_REPLY_TYPE_BLOCK_STATUS)
                .putLong(cookie)
                .putInt(4 + 8 * count)
                .putInt(contextId);
        return b.position(0);
    }

    /**
     * An {@code ERROR} chunk, always the reply's last ({@code DONE}): the error and its message in
     * UTF-8, cut to {@link NbdProtocol#MAX_STRING_BYTES} bytes (null: no message).
     */
    static ByteBuffer putError(ByteBuffer head, long cookie, int error, String message) {
        byte[] text = message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8);
        int textBytes = Math.min(text.length, MAX_STRING_BYTES);
        head.clear();
        return head.putInt(NBD_STRUCTURED_REPLY_MAGIC)
                .putShort((short) NBD_REPLY_FLAG_DONE)
                .putShort((short) NBD_REPLY_TYPE_ERROR)
                .putLong(cookie)
                .putInt(6 + textBytes)
                .putInt(error)
                .putShort((short) textBytes)
                .put(text, 0, textBytes)
                .flip();
    }
}
