package dmsnap.nbd;

/**
 * Wire constants of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md), with the spec's
 * names. All integers on the wire are big-endian.
 */
final class NbdProtocol {
    private NbdProtocol() {}

    // ---- handshake ---------------------------------------------------------------------------------
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    static final long NBD_REP_MAGIC = 0x3e889045565a9L;

    static final int NBD_FLAG_FIXED_NEWSTYLE = 1;
    static final int NBD_FLAG_NO_ZEROES = 1 << 1;
    static final int NBD_FLAG_C_FIXED_NEWSTYLE = 1;
    static final int NBD_FLAG_C_NO_ZEROES = 1 << 1;

    static final int NBD_OPT_EXPORT_NAME = 1;
    static final int NBD_OPT_ABORT = 2;
    static final int NBD_OPT_LIST = 3;
    static final int NBD_OPT_STARTTLS = 5;
    static final int NBD_OPT_INFO = 6;
    static final int NBD_OPT_GO = 7;
    static final int NBD_OPT_STRUCTURED_REPLY = 8;
    static final int NBD_OPT_LIST_META_CONTEXT = 9;
    static final int NBD_OPT_SET_META_CONTEXT = 10;

    static final int NBD_REP_ACK = 1;
    static final int NBD_REP_SERVER = 2;
    static final int NBD_REP_INFO = 3;
    static final int NBD_REP_META_CONTEXT = 4;
    static final int NBD_REP_FLAG_ERROR = 1 << 31;
    static final int NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR | 1;
    static final int NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR | 2;
    static final int NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR | 3;
    static final int NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR | 5;
    static final int NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR | 6;
    static final int NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR | 7;
    static final int NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR | 9;

    static final int NBD_INFO_EXPORT = 0;
    static final int NBD_INFO_NAME = 1;
    static final int NBD_INFO_DESCRIPTION = 2;
    static final int NBD_INFO_BLOCK_SIZE = 3;

    // ---- transmission flags ------------------------------------------------------------------------
    static final int NBD_FLAG_HAS_FLAGS = 1;
    static final int NBD_FLAG_READ_ONLY = 1 << 1;
    static final int NBD_FLAG_SEND_FLUSH = 1 << 2;
    static final int NBD_FLAG_SEND_FUA = 1 << 3;
    static final int NBD_FLAG_SEND_TRIM = 1 << 5;
    static final int NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
    static final int NBD_FLAG_SEND_DF = 1 << 7;
    static final int NBD_FLAG_CAN_MULTI_CONN = 1 << 8;

    // ---- transmission ------------------------------------------------------------------------------
    static final int NBD_REQUEST_MAGIC = 0x25609513;
    static final int NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    static final int REQUEST_HEADER_BYTES = 28;
    static final int SIMPLE_REPLY_HEADER_BYTES = 16;
    static final int STRUCTURED_REPLY_HEADER_BYTES = 20;

    static final int NBD_CMD_READ = 0;
    static final int NBD_CMD_WRITE = 1;
    static final int NBD_CMD_DISC = 2;
    static final int NBD_CMD_FLUSH = 3;
    static final int NBD_CMD_TRIM = 4;
    static final int NBD_CMD_WRITE_ZEROES = 6;
    static final int NBD_CMD_BLOCK_STATUS = 7;

    static final int NBD_CMD_FLAG_FUA = 1;
    static final int NBD_CMD_FLAG_NO_HOLE = 1 << 1;
    static final int NBD_CMD_FLAG_DF = 1 << 2;
    static final int NBD_CMD_FLAG_REQ_ONE = 1 << 3;

    static final int NBD_REPLY_FLAG_DONE = 1;
    static final int NBD_REPLY_TYPE_NONE = 0;
    static final int NBD_REPLY_TYPE_OFFSET_DATA = 1;
    static final int NBD_REPLY_TYPE_BLOCK_STATUS = 5;
    static final int NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;

    static final int NBD_EPERM = 1;
    static final int NBD_EIO = 5;
    static final int NBD_EINVAL = 22;
    static final int NBD_ENOSPC = 28;
    static final int NBD_ESHUTDOWN = 108;

    /** The largest READ/WRITE payload served, and what is advertised (the spec's interoperable 2^25). */
    static final int MAX_PAYLOAD_BYTES = 1 << 25;
    /** Strings (export names, messages) may not be longer (spec "Conventions"). */
    static final int MAX_STRING_BYTES = 4096;

    static String commandName(int type) {
        return switch (type) {
            case NBD_CMD_READ -> "READ";
            case NBD_CMD_WRITE -> "WRITE";
            case NBD_CMD_DISC -> "DISC";
            case NBD_CMD_FLUSH -> "FLUSH";
            case NBD_CMD_TRIM -> "TRIM";
            case NBD_CMD_WRITE_ZEROES -> "WRITE_ZEROES";
            case NBD_CMD_BLOCK_STATUS -> "BLOCK_STATUS";
            default -> "command " + type;
        };
    }

    static String optionName(int option) {
        return switch (option) {
            case NBD_OPT_EXPORT_NAME -> "EXPORT_NAME";
            case NBD_OPT_ABORT -> "ABORT";
            case NBD_OPT_LIST -> "LIST";
            case NBD_OPT_STARTTLS -> "STARTTLS";
            case NBD_OPT_INFO -> "INFO";
            case NBD_OPT_GO -> "GO";
            case NBD_OPT_STRUCTURED_REPLY -> "STRUCTURED_REPLY";
            case NBD_OPT_LIST_META_CONTEXT -> "LIST_META_CONTEXT";
            case NBD_OPT_SET_META_CONTEXT -> "SET_META_CONTEXT";
            default -> "option " + Integer.toUnsignedString(option);
        };
    }
}
