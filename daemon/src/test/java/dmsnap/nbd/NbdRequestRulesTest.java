package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;

import dmsnap.nbd.NbdRequestRules.Verdict;
import org.junit.jupiter.api.Test;

/** Each rule a request may break, the errno its refusal carries, and the requests that keep them all. */
class NbdRequestRulesTest {
    private static final long SIZE = 1 << 20;
    /** A writable 1 MiB export with 512-byte blocks that takes trims, structured replies negotiated. */
    private static final NbdRequestRules RULES = new NbdRequestRules("vol", SIZE, 512, false, true, true);

    private static NbdRequest request(int type, int flags, long offset, long length) {
        return new NbdRequest(flags, type, 99, offset, length);
    }

    private static void assertServed(NbdRequestRules rules, NbdRequest r) {
        assertSame(Verdict.SERVE, rules.check(r), r.toString());
    }

    private static void assertRefused(NbdRequestRules rules, NbdRequest r, int error, String message) {
        Verdict.Refuse refuse = assertInstanceOf(Verdict.Refuse.class, rules.check(r), r.toString());
        assertEquals(error, refuse.error(), r.toString());
        assertEquals(message, refuse.message(), r.toString());
    }

    @Test
    void requestsWithinTheRulesAreServed() {
        assertServed(RULES, request(NBD_CMD_READ, 0, 0, 4096));
        assertServed(RULES, request(NBD_CMD_READ, NBD_CMD_FLAG_DF, SIZE - 512, 512));
        assertServed(RULES, request(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 512, SIZE - 512));
        assertServed(RULES, request(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, 0, SIZE));
        assertServed(RULES, request(NBD_CMD_TRIM, NBD_CMD_FLAG_FUA, 0, SIZE));
    }

    @Test
    void disconnectEndsTransmissionWhateverItsFields() {
        assertSame(Verdict.DISCONNECT, RULES.check(request(NBD_CMD_DISC, 0, 0, 0)));
        assertSame(Verdict.DISCONNECT, RULES.check(request(NBD_CMD_DISC, 0xffff, 3, 7)));
        assertSame(
                Verdict.DISCONNECT,
                new NbdRequestRules("ro", SIZE, 512, true, false, false).check(request(NBD_CMD_DISC, 0, 0, 0)));
    }

    @Test
    void anUnknownCommandIsEinval() {
        assertRefused(RULES, request(5, 0, 0, 512), NBD_EINVAL, "command 5 is not supported");
        assertRefused(
                RULES,
                request(NBD_CMD_BLOCK_STATUS, 0, 0, 512),
                NBD_EINVAL,
                "BLOCK_STATUS without a metadata context: send SET_META_CONTEXT first");
        assertRefused(RULES, request(0xffff, 0xffff, 0, 0), NBD_EINVAL, "command 65535 is not supported");
    }

    @Test
    void unknownFlagsAreEinval() {
        assertRefused(RULES, request(NBD_CMD_READ, 1 << 4, 0, 512), NBD_EINVAL, "READ at 0+512: unknown flags 0x10");
        assertRefused(RULES, request(NBD_CMD_FLUSH, 0x8001, 0, 0), NBD_EINVAL, "FLUSH at 0+0: unknown flags 0x8001");
    }

    @Test
    void aFlagOnACommandItIsNotForIsEinval() {
        String invalid = ": flag not valid for this command";
        assertRefused(
                RULES, request(NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, 512), NBD_EINVAL, "READ at 0+512" + invalid);
        assertRefused(RULES, request(NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 0, 512), NBD_EINVAL, "WRITE at 0+512" + invalid);
        assertRefused(
                RULES, request(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512), NBD_EINVAL, "WRITE at 0+512" + invalid);
        assertRefused(
                RULES, request(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 512), NBD_EINVAL, "TRIM at 0+512" + invalid);
        assertRefused(
                RULES, request(NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 0, 512), NBD_EINVAL, "READ at 0+512" + invalid);
        NbdRequestRules simple = new NbdRequestRules("vol", SIZE, 512, false, true, false);
        assertRefused(simple, request(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512), NBD_EINVAL, "READ at 0+512" + invalid);
        assertServed(simple, request(NBD_CMD_READ, 0, 0, 512));
    }

    @Test
    void aFlushIsServedWhateverItsOffsetAndLength() {
        assertServed(RULES, request(NBD_CMD_FLUSH, 0, 0, 0));
        assertServed(RULES, request(NBD_CMD_FLUSH, NBD_CMD_FLAG_FUA, -1L, 0xffffffffL));
        assertServed(new NbdRequestRules("ro", SIZE, 512, true, false, false), request(NBD_CMD_FLUSH, 0, 3, 1));
    }

    @Test
    void aReadOnlyExportRefusesEveryChangeWithEperm() {
        NbdRequestRules readOnly = new NbdRequestRules("ro", SIZE, 512, true, false, true);
        assertRefused(readOnly, request(NBD_CMD_WRITE, 0, 0, 512), NBD_EPERM, "WRITE at 0+512: ro is read-only");
        assertRefused(
                readOnly,
                request(NBD_CMD_WRITE_ZEROES, 0, 0, 512),
                NBD_EPERM,
                "WRITE_ZEROES at 0+512: ro is read-only");
        assertRefused(readOnly, request(NBD_CMD_TRIM, 0, 0, 512), NBD_EPERM, "TRIM at 0+512: ro is read-only");
        // Read-only comes before the bounds: a write past the end of a read-only export is EPERM.
        assertRefused(
                readOnly, request(NBD_CMD_WRITE, 0, SIZE, 512), NBD_EPERM, "WRITE at 1048576+512: ro is read-only");
        assertServed(readOnly, request(NBD_CMD_READ, 0, 0, 512));
    }

    @Test
    void aTrimWhereTrimIsNotOfferedIsEinval() {
        NbdRequestRules noTrim = new NbdRequestRules("vol", SIZE, 512, false, false, true);
        assertRefused(noTrim, request(NBD_CMD_TRIM, 0, 0, 512), NBD_EINVAL, "TRIM is not supported by vol");
    }

    @Test
    void aPayloadOfNothingOrOverTheMaximumIsEinval() {
        String lengths = ": length must be 1.." + MAX_PAYLOAD_BYTES + " bytes";
        assertRefused(RULES, request(NBD_CMD_READ, 0, 0, 0), NBD_EINVAL, "READ at 0+0" + lengths);
        assertRefused(RULES, request(NBD_CMD_WRITE, 0, 0, 0), NBD_EINVAL, "WRITE at 0+0" + lengths);
        long over = MAX_PAYLOAD_BYTES + 512L;
        assertRefused(RULES, request(NBD_CMD_READ, 0, 0, over), NBD_EINVAL, "READ at 0+" + over + lengths);
        assertRefused(RULES, request(NBD_CMD_WRITE, 0, 0, over), NBD_EINVAL, "WRITE at 0+" + over + lengths);
        // No payload, so no maximum: past the end instead.
        NbdRequestRules large = new NbdRequestRules("big", 1L << 40, 512, false, true, true);
        assertServed(large, request(NBD_CMD_TRIM, 0, 0, over));
        assertServed(large, request(NBD_CMD_WRITE_ZEROES, 0, 0, over));
        assertServed(large, request(NBD_CMD_READ, 0, 0, MAX_PAYLOAD_BYTES));
    }

    @Test
    void anOffsetOrLengthOffTheMinimumBlockIsEinval() {
        String aligned = ": not aligned to the minimum block size 4096";
        NbdRequestRules rules = new NbdRequestRules("vol", SIZE, 4096, false, true, true);
        assertRefused(rules, request(NBD_CMD_READ, 0, 512, 4096), NBD_EINVAL, "READ at 512+4096" + aligned);
        assertRefused(rules, request(NBD_CMD_WRITE, 0, 0, 4095), NBD_EINVAL, "WRITE at 0+4095" + aligned);
        assertRefused(rules, request(NBD_CMD_TRIM, 0, 4096, 1), NBD_EINVAL, "TRIM at 4096+1" + aligned);
        // Offsets are unsigned, in the message too.
        assertRefused(
                rules,
                request(NBD_CMD_READ, 0, -4095L, 4096),
                NBD_EINVAL,
                "READ at 18446744073709547521+4096" + aligned);
    }

    @Test
    void pastTheEndAWriteIsEnospcAndAnythingElseEinval() {
        String beyond = " is beyond the end of vol (1048576 bytes)";
        assertRefused(RULES, request(NBD_CMD_WRITE, 0, SIZE - 512, 1024), NBD_ENOSPC, "WRITE at 1048064+1024" + beyond);
        assertRefused(
                RULES, request(NBD_CMD_WRITE_ZEROES, 0, SIZE, 512), NBD_ENOSPC, "WRITE_ZEROES at 1048576+512" + beyond);
        assertRefused(RULES, request(NBD_CMD_READ, 0, SIZE, 512), NBD_EINVAL, "READ at 1048576+512" + beyond);
        assertRefused(RULES, request(NBD_CMD_TRIM, 0, 0, SIZE + 512), NBD_EINVAL, "TRIM at 0+1049088" + beyond);
        // An offset past 2^63 is huge, not negative.
        assertRefused(
                RULES,
                request(NBD_CMD_READ, 0, -4096L, 4096),
                NBD_EINVAL,
                "READ at 18446744073709547520+4096" + beyond);
        assertRefused(
                RULES,
                request(NBD_CMD_WRITE, 0, Long.MIN_VALUE, 512),
                NBD_ENOSPC,
                "WRITE at 9223372036854775808+512" + beyond);
        // Up to the end is within it; so is a request of nothing at the end.
        assertServed(RULES, request(NBD_CMD_WRITE_ZEROES, 0, SIZE - 512, 512));
        assertServed(RULES, request(NBD_CMD_TRIM, 0, SIZE, 0));
    }
}
