package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The wire bytes of requests and replies, against the spec's layouts written out by hand. */
class NbdCodecTest {
    private static final HexFormat HEX = HexFormat.of();

    private static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    /** Puts {@code r}'s header into {@code into}, as a client does (the server only decodes requests). */
    private static ByteBuffer encodeRequest(NbdRequest r, ByteBuffer into) {
        return into.putInt(NBD_REQUEST_MAGIC)
                .putShort((short) r.flags())
                .putShort((short) r.type())
                .putLong(r.cookie())
                .putLong(r.offset())
                .putInt((int) r.length());
    }

    private static ByteBuffer head() {
        return ByteBuffer.allocateDirect(NbdCodec.REPLY_HEAD_BYTES);
    }

    @Test
    void decodesARequestHeaderWithEveryFieldUnsigned() throws IOException {
        ByteBuffer header = ByteBuffer.wrap(
                HEX.parseHex("25609513" + "fffe" + "8006" + "0102030405060708" + "ffffffffffff0000" + "fffffe00"));
        NbdRequest r = NbdCodec.decodeRequest(header);
        assertEquals(new NbdRequest(0xfffe, 0x8006, 0x0102030405060708L, 0xffffffffffff0000L, 0xfffffe00L), r);
        assertEquals(REQUEST_HEADER_BYTES, header.position(), "the whole header read, nothing more");
    }

    @Test
    void encodeThenDecodeGivesTheRequestBack() throws IOException {
        List<NbdRequest> requests = List.of(
                new NbdRequest(0, NBD_CMD_READ, 0, 0, 4096),
                new NbdRequest(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, -1L, 1L << 40, MAX_PAYLOAD_BYTES),
                new NbdRequest(
                        NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES, 42, Long.MIN_VALUE, 0xffffffffL),
                new NbdRequest(0xffff, 0xffff, Long.MAX_VALUE, -512L, 0),
                new NbdRequest(0, NBD_CMD_DISC, 7, 0, 0));
        for (NbdRequest r : requests) {
            ByteBuffer wire = encodeRequest(r, ByteBuffer.allocate(REQUEST_HEADER_BYTES));
            assertFalse(wire.hasRemaining(), "a header fills " + REQUEST_HEADER_BYTES + " bytes: " + r);
            assertEquals(r, NbdCodec.decodeRequest(wire.flip()));
        }
    }

    @Test
    void encodesARequestInTheSpecsLayout() {
        ByteBuffer wire = encodeRequest(
                new NbdRequest(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0x1122334455667788L, 0x200, 0x1000),
                ByteBuffer.allocate(REQUEST_HEADER_BYTES));
        assertEquals(
                "25609513" + "0001" + "0001" + "1122334455667788" + "0000000000000200" + "00001000",
                HEX.formatHex(wire.array()));
    }

    @Test
    void aBadMagicIsAnIOExceptionNamingIt() {
        ByteBuffer header = ByteBuffer.wrap(HEX.parseHex("25609514" + "0000".repeat(12)));
        IOException e = assertThrows(IOException.class, () -> NbdCodec.decodeRequest(header));
        assertEquals("bad request magic 0x25609514", e.getMessage());
    }

    @Test
    void aSimpleReplyIsMagicErrorCookie() {
        assertEquals(
                "67446698" + "00000016" + "fedcba9876543210",
                HEX.formatHex(bytes(NbdCodec.putSimpleReply(head(), NBD_EINVAL, 0xfedcba9876543210L))));
        assertEquals(
                SIMPLE_REPLY_HEADER_BYTES, NbdCodec.putSimpleReply(head(), 0, 1).remaining());
    }

    @Test
    void anOffsetDataChunkHeaderCountsTheOffsetInItsLength() {
        assertEquals(
                "668e33ef" + "0001" + "0001" + "0000000000000009" + "00001008" + "0000000000200000",
                HEX.formatHex(bytes(NbdCodec.putOffsetData(head(), true, 9, 2 << 20, 4096))));
        assertEquals(
                "668e33ef" + "0000" + "0001" + "0000000000000009" + "00040008" + "ffffffffffff0000",
                HEX.formatHex(bytes(NbdCodec.putOffsetData(head(), false, 9, -65536L, 256 << 10))),
                "not the last chunk: no DONE");
    }

    @Test
    void aStructuredErrorChunkIsExactlyTheSpecsBytes() {
        ByteBuffer chunk = NbdCodec.putError(head(), 0x0102030405060708L, NBD_ENOSPC, "full \u00e9");
        assertEquals(
                "668e33ef" // NBD_STRUCTURED_REPLY_MAGIC
                        + "0001" // NBD_REPLY_FLAG_DONE
                        + "8001" // NBD_REPLY_TYPE_ERROR
                        + "0102030405060708" // cookie
                        + "0000000d" // length: error (4) + message length (2) + 7 bytes of UTF-8
                        + "0000001c" // NBD_ENOSPC
                        + "0007" // message length
                        + "66756c6c20c3a9", // "full \u00e9"
                HEX.formatHex(bytes(chunk)));
    }

    @Test
    void anErrorChunkWithoutAMessageHasAnEmptyOne() {
        assertEquals(
                "668e33ef" + "0001" + "8001" + "0000000000000003" + "00000006" + "00000005" + "0000",
                HEX.formatHex(bytes(NbdCodec.putError(head(), 3, NBD_EIO, null))));
    }

    @Test
    void anErrorMessageIsCutToTheLongestStringTheSpecAllows() {
        ByteBuffer chunk = NbdCodec.putError(head(), 3, NBD_EIO, "x".repeat(MAX_STRING_BYTES + 100));
        assertEquals(NbdCodec.REPLY_HEAD_BYTES, chunk.remaining(), "the head has room for exactly this");
        chunk.position(16);
        assertEquals(6 + MAX_STRING_BYTES, chunk.getInt());
        assertEquals(NBD_EIO, chunk.getInt());
        assertEquals(MAX_STRING_BYTES, Short.toUnsignedInt(chunk.getShort()));
        byte[] text = new byte[chunk.remaining()];
        chunk.get(text);
        assertArrayEquals("x".repeat(MAX_STRING_BYTES).getBytes(StandardCharsets.UTF_8), text);
    }

    @Test
    void eachEncoderStartsFromACleanHead() {
        ByteBuffer head = head();
        NbdCodec.putError(head, 1, NBD_EIO, "a long message that fills the head further than what follows");
        assertEquals(
                SIMPLE_REPLY_HEADER_BYTES, NbdCodec.putSimpleReply(head, 0, 1).remaining());
        assertEquals(
                STRUCTURED_REPLY_HEADER_BYTES + 8,
                NbdCodec.putOffsetData(head, true, 1, 0, 512).remaining());
    }

    @Test
    void onlyReadsAndErrorsGetStructuredReplies() {
        NbdRequest read = new NbdRequest(0, NBD_CMD_READ, 1, 0, 512);
        NbdRequest write = new NbdRequest(0, NBD_CMD_WRITE, 1, 0, 512);
        NbdRequest flush = new NbdRequest(0, NBD_CMD_FLUSH, 1, 0, 0);
        for (NbdRequest r : List.of(read, write, flush)) {
            assertTrue(NbdCodec.simpleReply(false, r, 0), "not negotiated: " + r);
            assertTrue(NbdCodec.simpleReply(false, r, NBD_EIO), "not negotiated: " + r);
            assertFalse(NbdCodec.simpleReply(true, r, NBD_EIO), "an error carries its message: " + r);
        }
        assertFalse(NbdCodec.simpleReply(true, read, 0), "a read's data goes in chunks");
        assertTrue(NbdCodec.simpleReply(true, write, 0));
        assertTrue(NbdCodec.simpleReply(true, flush, 0));
    }
}
