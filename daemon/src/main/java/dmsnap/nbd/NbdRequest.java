package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

/**
 * A transmission request as it came off the wire (spec "Request message"): the fields with the
 * spec's names, each widened to hold its unsigned value ({@code flags} and {@code type} are 16
 * bits, {@code length} 32; {@code offset} is 64 bits, compare it unsigned).
 */
record NbdRequest(int flags, int type, long cookie, long offset, long length) {
    boolean fua() {
        return (flags & NBD_CMD_FLAG_FUA) != 0;
    }

    boolean df() {
        return (flags & NBD_CMD_FLAG_DF) != 0;
    }

    boolean reqOne() {
        return (flags & NBD_CMD_FLAG_REQ_ONE) != 0;
    }

    boolean noHole() {
        return (flags & NBD_CMD_FLAG_NO_HOLE) != 0;
    }

    /** Whether a payload of {@code length} bytes goes with it: data after a WRITE, in the reply of a READ. */
    boolean hasPayload() {
        return type == NBD_CMD_READ || type == NBD_CMD_WRITE;
    }

    /** For messages: {@code WRITE at 4096+512}. */
    String describe() {
        return commandName(type) + " at " + Long.toUnsignedString(offset) + "+" + length;
    }
}
