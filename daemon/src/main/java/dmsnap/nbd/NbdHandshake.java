package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

import dmsnap.device.MappedDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fixed newstyle negotiation (proto.md "Handshake"): the greeting, the client flags, then
 * options until {@code NBD_OPT_GO} or {@code NBD_OPT_EXPORT_NAME} selects an export, or the
 * client aborts. Supported: EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
 * LIST_META_CONTEXT and SET_META_CONTEXT (see {@link MetaContext}), and STARTTLS
 * when the connection's {@link Policy} offers TLS (refused by policy otherwise); anything else is
 * answered {@code NBD_REP_ERR_UNSUP}.
 *
 * <p>TLS (proto.md "TLS support"): where TLS is required (FORCEDTLS) every option but STARTTLS
 * and ABORT is answered {@code NBD_REP_ERR_TLS_REQD} until TLS runs, and EXPORT_NAME, which
 * cannot be answered with an error, ends the connection; where it is offered, the client may
 * start it or not. After the TLS handshake the negotiation goes on over TLS with what was
 * negotiated in plain text forgotten (structured replies), as a man in the middle may have
 * chosen it; a second STARTTLS is {@code NBD_REP_ERR_INVALID}. A peer the server refuses gets
 * {@code NBD_REP_ERR_POLICY} with the reason for every option (EXPORT_NAME: the connection ends).
 *
 * <p>Malformed options get
 * {@code NBD_REP_ERR_INVALID}, option data over {@value #MAX_OPTION_BYTES} bytes
 * {@code NBD_REP_ERR_TOO_BIG} (over {@value #MAX_SKIPPED_OPTION_BYTES} the connection is
 * dropped), as does a client that sends more than {@value #MAX_OPTIONS} options.
 */
final class NbdHandshake {
    private static final Logger log = LoggerFactory.getLogger(NbdHandshake.class);
    static final int MAX_OPTION_BYTES = 64 * 1024;
    static final long MAX_SKIPPED_OPTION_BYTES = 16L << 20;
    static final int MAX_OPTIONS = 1024;

    /** Where exports come from. */
    interface Exports {
        /** The device an export name (empty: the default export) selects. */
        MappedDevice resolve(String name) throws NoSuchExportException;

        /** Every device that can be exported now, by name. */
        java.util.List<MappedDevice> list();
    }

    /** An export name that selects nothing; the message is for the client. */
    static final class NoSuchExportException extends Exception {
        NoSuchExportException(String message) {
            super(message);
        }
    }

    /**
     * What a connection may do: TLS offered ({@code tls} not null) and perhaps required; or,
     * with a {@code refusal}, nothing (each option is refused with it).
     */
    record Policy(NbdTls tls, boolean tlsRequired, String refusal) {
        static final Policy PLAIN = new Policy(null, false, null);

        static Policy refuse(String reason) {
            return new Policy(null, false, reason);
        }
    }

    /**
     * The outcome: the export to serve, whether replies are structured, and the metadata contexts
     * selected for block status (by id: index + 1).
     */
    record Result(NbdExport export, boolean structuredReplies, List<MetaContext> contexts) {}

    private final NbdChannel channel;
    private final Exports exports;
    private final MemorySegment zeroes;
    private final Policy policy;
    private final ByteBuffer header = ByteBuffer.allocate(16);
    private ByteBuffer scratch;
    private boolean noZeroes;
    private boolean structuredReplies;
    private boolean tlsStarted;
    /** Whether the {@code qemu:} contexts are offered (the daemon's opt-in). */
    private final boolean qemuContexts;
    /** The last SET_META_CONTEXT: the device it named and what it selected (empty: nothing). */
    private String contextsExport;

    private List<MetaContext> contexts = List.of();

    NbdHandshake(NbdChannel channel, Exports exports, MemorySegment zeroes, Policy policy, boolean qemuContexts) {
        this.channel = channel;
        this.exports = exports;
        this.zeroes = zeroes;
        this.policy = policy;
        this.qemuContexts = qemuContexts;
    }

    /**
     * Runs the negotiation.
     *
     * @return the export, or null when the client aborted or left
     * @throws IOException a protocol violation or a broken connection (the caller closes it)
     */
    Result negotiate() throws IOException {
        channel.startMessage();
        ByteBuffer greeting = ByteBuffer.allocate(18);
        greeting.putLong(NBDMAGIC).putLong(IHAVEOPT).putShort((short) (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
        channel.writeFully(greeting.flip());
        ByteBuffer clientFlags = ByteBuffer.allocate(4);
        channel.readFully(clientFlags);
        int flags = clientFlags.flip().getInt();
        if ((flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) != 0) {
            throw new IOException("unknown client flags 0x" + Integer.toHexString(flags));
        }
        noZeroes = (flags & NBD_FLAG_C_NO_ZEROES) != 0;
        for (int options = 0; options < MAX_OPTIONS; options++) {
            header.clear();
            channel.readFully(header);
            header.flip();
            long magic = header.getLong();
            int option = header.getInt();
            long length = Integer.toUnsignedLong(header.getInt());
            if (magic != IHAVEOPT) {
                throw new IOException("bad option magic 0x" + Long.toHexString(magic));
            }
            if (length > MAX_OPTION_BYTES) {
                if (option == NBD_OPT_EXPORT_NAME || length > MAX_SKIPPED_OPTION_BYTES) {
                    throw new IOException(optionName(option) + " with " + length + " bytes of data");
                }
                if (scratch == null) {
                    scratch = ByteBuffer.allocate(64 * 1024);
                }
                channel.skip(length, scratch);
                if (!refused(option)) {
                    reply(option, NBD_REP_ERR_TOO_BIG, "option data of " + length + " bytes is too big");
                }
                continue;
            }
            ByteBuffer data = ByteBuffer.allocate((int) length);
            channel.readFully(data);
            data.flip();
            Result result = option(option, data);
            if (result != null) {
                channel.endMessage();
                return result;
            }
            if (option == NBD_OPT_ABORT) {
                return null;
            }
        }
        throw new IOException("more than " + MAX_OPTIONS + " options");
    }

    /** One option; a result when it ended the negotiation with an export. */
    private Result option(int option, ByteBuffer data) throws IOException {
        if (refused(option)) {
            return null;
        }
        switch (option) {
            case NBD_OPT_EXPORT_NAME -> {
                MappedDevice device;
                try {
                    device = exports.resolve(string(data, data.remaining()));
                } catch (NoSuchExportException | InvalidStringException e) {
                    // EXPORT_NAME cannot be answered with an error: the spec says hang up.
                    throw new IOException("EXPORT_NAME: " + e.getMessage());
                }
                NbdExport export = NbdExport.open(device, zeroes);
                ByteBuffer out = ByteBuffer.allocate(noZeroes ? 10 : 134);
                out.putLong(export.sizeBytes()).putShort((short) export.transmissionFlags(structuredReplies));
                try {
                    channel.writeFully(out.position(out.capacity()).flip());
                } catch (IOException e) {
                    export.close();
                    throw e;
                }
                return new Result(export, structuredReplies, contextsFor(device));
            }
            case NBD_OPT_ABORT -> {
                try {
                    ack(option);
                    if (tlsStarted) {
                        channel.finish(); // close_notify, then the connection ends
                    }
                } catch (IOException e) {
                    // The client may close without waiting for the ACK (spec: handle it gracefully).
                }
                return null;
            }
            case NBD_OPT_LIST -> {
                if (data.hasRemaining()) {
                    reply(option, NBD_REP_ERR_INVALID, "LIST takes no data");
                    return null;
                }
                for (MappedDevice device : exports.list()) {
                    byte[] name = device.name().getBytes(StandardCharsets.UTF_8);
                    reply(
                            option,
                            NBD_REP_SERVER,
                            ByteBuffer.allocate(4 + name.length)
                                    .putInt(name.length)
                                    .put(name)
                                    .flip());
                }
                ack(option);
                return null;
            }
            case NBD_OPT_STARTTLS -> {
                startTls(option, data);
                return null;
            }
            case NBD_OPT_INFO, NBD_OPT_GO -> {
                return infoOrGo(option, data);
            }
            case NBD_OPT_STRUCTURED_REPLY -> {
                if (data.hasRemaining()) {
                    reply(option, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
                } else if (structuredReplies) {
                    reply(option, NBD_REP_ERR_INVALID, "structured replies are already negotiated");
                } else {
                    structuredReplies = true;
                    ack(option);
                }
                return null;
            }
            case NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT -> {
                metaContexts(option, data);
                return null;
            }
            default -> {
                reply(option, NBD_REP_ERR_UNSUP, optionName(option) + " is not supported");
                return null;
            }
        }
    }

    /**
     * Answers an option the policy does not let through (a refused peer; TLS required and not
     * running) with its error; true when it did.
     *
     * @throws IOException for EXPORT_NAME, which cannot be answered with an error: the spec has
     *                     the server end the session
     */
    private boolean refused(int option) throws IOException {
        if (option == NBD_OPT_ABORT) {
            return false;
        }
        if (policy.refusal() != null) {
            if (option == NBD_OPT_EXPORT_NAME) {
                throw new IOException("EXPORT_NAME refused: " + policy.refusal());
            }
            reply(option, NBD_REP_ERR_POLICY, policy.refusal());
            return true;
        }
        if (policy.tlsRequired() && !tlsStarted && option != NBD_OPT_STARTTLS) {
            if (option == NBD_OPT_EXPORT_NAME) {
                throw new IOException("EXPORT_NAME without TLS, which this server requires");
            }
            reply(option, NBD_REP_ERR_TLS_REQD, "TLS is required: send STARTTLS first (nbds:// URIs)");
            return true;
        }
        return false;
    }

    private void startTls(int option, ByteBuffer data) throws IOException {
        if (policy.tls() == null) {
            reply(option, NBD_REP_ERR_POLICY, "TLS is not offered here (the daemon has no --tls-cert)");
        } else if (tlsStarted) {
            reply(option, NBD_REP_ERR_INVALID, "TLS is already running");
        } else if (data.hasRemaining()) {
            reply(option, NBD_REP_ERR_INVALID, "STARTTLS takes no data");
        } else {
            ack(option);
            tlsStarted = true;
            try {
                channel.startTls(policy.tls().newEngine());
            } catch (IOException e) {
                throw new IOException("TLS handshake failed: " + e.getMessage(), e);
            }
            // Negotiated in plain text, where anyone on the way could have chosen it: forgotten.
            structuredReplies = false;
            contextsExport = null;
            contexts = List.of();
            log.debug("{}: TLS {}", channel.peer(), channel.tls().describe());
        }
    }

    private Result infoOrGo(int option, ByteBuffer data) throws IOException {
        String name;
        int[] requests;
        try {
            if (data.remaining() < 6) {
                throw new InvalidStringException("too short");
            }
            long nameLength = Integer.toUnsignedLong(data.getInt());
            if (nameLength > data.remaining() - 2) {
                throw new InvalidStringException("name length " + nameLength + " beyond the option data");
            }
            name = string(data, (int) nameLength);
            int count = Short.toUnsignedInt(data.getShort());
            if (data.remaining() != 2 * count) {
                throw new InvalidStringException(count + " information requests do not fill the option data");
            }
            requests = new int[count];
            for (int i = 0; i < count; i++) {
                requests[i] = Short.toUnsignedInt(data.getShort());
            }
        } catch (InvalidStringException e) {
            reply(option, NBD_REP_ERR_INVALID, optionName(option) + ": " + e.getMessage());
            return null;
        }
        MappedDevice device;
        try {
            device = exports.resolve(name);
        } catch (NoSuchExportException e) {
            reply(option, NBD_REP_ERR_UNKNOWN, e.getMessage());
            return null;
        }
        NbdExport export = NbdExport.open(device, zeroes);
        boolean ok = false;
        try {
            ByteBuffer info = ByteBuffer.allocate(12);
            info.putShort((short) NBD_INFO_EXPORT).putLong(export.sizeBytes()).putShort((short)
                    export.transmissionFlags(structuredReplies));
            reply(option, NBD_REP_INFO, info.flip());
            boolean nameAsked = false;
            boolean descriptionAsked = false;
            for (int request : requests) {
                nameAsked |= request == NBD_INFO_NAME;
                descriptionAsked |= request == NBD_INFO_DESCRIPTION;
            }
            if (nameAsked || name.isEmpty()) {
                replyInfoString(option, NBD_INFO_NAME, export.name());
            }
            if (descriptionAsked) {
                replyInfoString(option, NBD_INFO_DESCRIPTION, NbdExport.description(device));
            }
            // Always sent: requests must be aligned to the minimum block size (unaligned ones get EINVAL).
            ByteBuffer sizes = ByteBuffer.allocate(14);
            sizes.putShort((short) NBD_INFO_BLOCK_SIZE)
                    .putInt(export.minimumBlockBytes())
                    .putInt(export.preferredBlockBytes())
                    .putInt(MAX_PAYLOAD_BYTES);
            reply(option, NBD_REP_INFO, sizes.flip());
            ack(option);
            ok = option == NBD_OPT_GO;
            if (ok) {
                log.debug("{}: GO {} ({} bytes)", channel.peer(), export.name(), export.sizeBytes());
                return new Result(export, structuredReplies, contextsFor(device));
            }
            return null;
        } finally {
            if (!ok) {
                export.close();
            }
        }
    }

    /**
     * LIST_META_CONTEXT and SET_META_CONTEXT (proto.md): the export's name, then the queries. LIST
     * answers every context the queries select (all of them for none) with id 0; SET selects them
     * for the export, replacing any earlier selection, and answers each with its id. SET needs
     * structured replies first, as block status replies are structured.
     */
    private void metaContexts(int option, ByteBuffer data) throws IOException {
        boolean list = option == NBD_OPT_LIST_META_CONTEXT;
        String name;
        List<String> queries = new ArrayList<>();
        try {
            if (data.remaining() < 8) {
                throw new InvalidStringException("too short");
            }
            long nameLength = Integer.toUnsignedLong(data.getInt());
            if (nameLength > data.remaining() - 4) {
                throw new InvalidStringException("export name length " + nameLength + " beyond the option data");
            }
            name = string(data, (int) nameLength);
            long count = Integer.toUnsignedLong(data.getInt());
            // Each query takes 4 bytes at least: a count the data cannot hold is refused before looping.
            if (count > data.remaining() / 4) {
                throw new InvalidStringException(count + " queries in " + data.remaining() + " bytes");
            }
            for (long i = 0; i < count; i++) {
                if (data.remaining() < 4) {
                    throw new InvalidStringException("query " + (i + 1) + " of " + count + " is missing");
                }
                long length = Integer.toUnsignedLong(data.getInt());
                if (length > data.remaining()) {
                    throw new InvalidStringException("query length " + length + " beyond the option data");
                }
                queries.add(string(data, (int) length));
            }
            if (data.hasRemaining()) {
                throw new InvalidStringException(data.remaining() + " bytes after the last query");
            }
        } catch (InvalidStringException e) {
            reply(
                    option,
                    e.tooBig ? NBD_REP_ERR_TOO_BIG : NBD_REP_ERR_INVALID,
                    optionName(option) + ": " + e.getMessage());
            return;
        }
        if (!list && !structuredReplies) {
            reply(
                    option,
                    NBD_REP_ERR_INVALID,
                    "SET_META_CONTEXT needs structured replies: send STRUCTURED_REPLY first");
            return;
        }
        MappedDevice device;
        try {
            device = exports.resolve(name);
        } catch (NoSuchExportException e) {
            reply(option, NBD_REP_ERR_UNKNOWN, e.getMessage());
            return;
        }
        List<MetaContext> chosen = MetaContext.select(MetaContext.offered(device, qemuContexts), queries, list);
        for (int i = 0; i < chosen.size(); i++) {
            byte[] contextName = chosen.get(i).name().getBytes(StandardCharsets.UTF_8);
            reply(
                    option,
                    NBD_REP_META_CONTEXT,
                    ByteBuffer.allocate(4 + contextName.length)
                            .putInt(list ? 0 : i + 1)
                            .put(contextName)
                            .flip());
        }
        if (!list) {
            contextsExport = device.name();
            contexts = List.copyOf(chosen);
        }
        ack(option);
    }

    /** The contexts selected for {@code device}: none when the last SET named another export. */
    private List<MetaContext> contextsFor(MappedDevice device) {
        return device.name().equals(contextsExport) ? contexts : List.of();
    }

    private void replyInfoString(int option, int type, String value) throws IOException {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        int length = Math.min(bytes.length, MAX_STRING_BYTES);
        reply(
                option,
                NBD_REP_INFO,
                ByteBuffer.allocate(2 + length)
                        .putShort((short) type)
                        .put(bytes, 0, length)
                        .flip());
    }

    private void ack(int option) throws IOException {
        reply(option, NBD_REP_ACK, (ByteBuffer) null);
    }

    private void reply(int option, int type, String message) throws IOException {
        ByteBuffer data = null;
        if (message != null) {
            byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
            data = ByteBuffer.wrap(bytes, 0, Math.min(bytes.length, MAX_STRING_BYTES));
        }
        reply(option, type, data);
    }

    private void reply(int option, int type, ByteBuffer data) throws IOException {
        ByteBuffer head = ByteBuffer.allocate(20);
        head.putLong(NBD_REP_MAGIC)
                .putInt(option)
                .putInt(type)
                .putInt(data == null ? 0 : data.remaining())
                .flip();
        if (data == null) {
            channel.writeFully(head);
        } else {
            channel.writeFully(head, data);
        }
    }

    /** A malformed string or length in an option. */
    private static final class InvalidStringException extends Exception {
        /** Longer than the protocol's strings may be: NBD_REP_ERR_TOO_BIG rather than INVALID. */
        final boolean tooBig;

        InvalidStringException(String message) {
            this(message, false);
        }

        InvalidStringException(String message, boolean tooBig) {
            super(message);
            this.tooBig = tooBig;
        }
    }

    /** A UTF-8 string of {@code length} bytes, at most the spec's 4096. */
    private static String string(ByteBuffer data, int length) throws InvalidStringException {
        if (length > MAX_STRING_BYTES) {
            throw new InvalidStringException("a name of " + length + " bytes (at most " + MAX_STRING_BYTES + ")", true);
        }
        ByteBuffer slice = data.slice(data.position(), length);
        data.position(data.position() + length);
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(slice)
                    .toString();
        } catch (CharacterCodingException e) {
            throw new InvalidStringException("a name that is not UTF-8");
        }
    }
}
