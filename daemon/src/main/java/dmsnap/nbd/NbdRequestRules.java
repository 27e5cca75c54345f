package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;

/**
 * The rules a request must keep before it may run (spec "Request types" and "Error values"),
 * against the export as its client was told it at negotiation and against what was negotiated
 * (structured replies). Pure: no I/O, nothing counted or logged; {@link #check} gives a
 * {@link Verdict} and the connection acts on it. A request that breaks a rule gets the spec's
 * error and the connection goes on; a broken framing (bad magic) never gets here, it ends the
 * connection in {@link NbdCodec#decodeRequest}.
 *
 * @param exportName for messages
 * @param sizeBytes the export's size: no request reaches past it
 * @param minimumBlockBytes offsets and lengths are multiples of it (the advertised minimum block size)
 * @param readOnly the export was advertised {@code READ_ONLY}: only reads and flushes
 * @param canTrim the export was advertised {@code SEND_TRIM}
 * @param structured structured replies were negotiated: only then may a read carry {@code DF}
 * @param blockStatus metadata contexts were selected: only then is {@code BLOCK_STATUS} served
 */
record NbdRequestRules(
        String exportName,
        long sizeBytes,
        long minimumBlockBytes,
        boolean readOnly,
        boolean canTrim,
        boolean structured,
        boolean blockStatus) {
    private static final int KNOWN_FLAGS =
            NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE;

    /** Without block status (as before metadata contexts existed). */
    NbdRequestRules(
            String exportName,
            long sizeBytes,
            long minimumBlockBytes,
            boolean readOnly,
            boolean canTrim,
            boolean structured) {
        this(exportName, sizeBytes, minimumBlockBytes, readOnly, canTrim, structured, false);
    }

    /** What to do with a request. */
    sealed interface Verdict {
        /** It keeps the rules: do it. */
        Serve SERVE = new Serve();
        /** {@code NBD_CMD_DISC}: the client ends transmission (whatever its flags); no reply. */
        Disconnect DISCONNECT = new Disconnect();

        record Serve() implements Verdict {}

        record Disconnect() implements Verdict {}

        /** Refused without running: {@code error} in its reply, {@code message} in a structured one. */
        record Refuse(int error, String message) implements Verdict {}
    }

    /** The rules for {@code export}'s client. */
    static NbdRequestRules forExport(NbdExport export, boolean structured, boolean blockStatus) {
        return new NbdRequestRules(
                export.name(),
                export.sizeBytes(),
                export.minimumBlockBytes(),
                export.readOnly(),
                export.canTrim(),
                structured,
                blockStatus);
    }

    /** The verdict on {@code r}; the first rule it breaks gives the refusal. */
    Verdict check(NbdRequest r) {
        switch (r.type()) {
            case NBD_CMD_DISC -> {
                return Verdict.DISCONNECT;
            }
            case NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLUSH -> {}
            case NBD_CMD_BLOCK_STATUS -> {
                if (!blockStatus) {
                    return new Verdict.Refuse(
                            NBD_EINVAL, "BLOCK_STATUS without a metadata context: send SET_META_CONTEXT first");
                }
            }
            default -> {
                return new Verdict.Refuse(NBD_EINVAL, commandName(r.type()) + " is not supported");
            }
        }
        if ((r.flags() & ~KNOWN_FLAGS) != 0) {
            return new Verdict.Refuse(NBD_EINVAL, r.describe() + ": unknown flags 0x" + Integer.toHexString(r.flags()));
        }
        if (r.df() && (r.type() != NBD_CMD_READ || !structured)
                || r.noHole() && r.type() != NBD_CMD_WRITE_ZEROES
                || r.reqOne() && r.type() != NBD_CMD_BLOCK_STATUS) {
            return new Verdict.Refuse(NBD_EINVAL, r.describe() + ": flag not valid for this command");
        }
        if (r.type() == NBD_CMD_FLUSH) {
            return Verdict.SERVE; // offset and length are reserved; clients send zeroes
        }
        if (readOnly && r.type() != NBD_CMD_READ && r.type() != NBD_CMD_BLOCK_STATUS) {
            return new Verdict.Refuse(NBD_EPERM, r.describe() + ": " + exportName + " is read-only");
        }
        if (r.type() == NBD_CMD_TRIM && !canTrim) {
            return new Verdict.Refuse(NBD_EINVAL, "TRIM is not supported by " + exportName);
        }
        if (r.type() == NBD_CMD_BLOCK_STATUS && r.length() == 0) {
            return new Verdict.Refuse(NBD_EINVAL, r.describe() + ": length must not be 0");
        }
        if (r.hasPayload() && (r.length() > MAX_PAYLOAD_BYTES || r.length() == 0)) {
            return new Verdict.Refuse(NBD_EINVAL, r.describe() + ": length must be 1.." + MAX_PAYLOAD_BYTES + " bytes");
        }
        if (Long.remainderUnsigned(r.offset(), minimumBlockBytes) != 0 || r.length() % minimumBlockBytes != 0) {
            return new Verdict.Refuse(
                    NBD_EINVAL, r.describe() + ": not aligned to the minimum block size " + minimumBlockBytes);
        }
        if (Long.compareUnsigned(r.offset(), sizeBytes) > 0 || r.length() > sizeBytes - r.offset()) {
            // A write past the end is ENOSPC (spec "Error values"); anything else there is EINVAL.
            boolean write = r.type() == NBD_CMD_WRITE || r.type() == NBD_CMD_WRITE_ZEROES;
            return new Verdict.Refuse(
                    write ? NBD_ENOSPC : NBD_EINVAL,
                    r.describe() + " is beyond the end of " + exportName + " (" + sizeBytes + " bytes)");
        }
        return Verdict.SERVE;
    }
}
