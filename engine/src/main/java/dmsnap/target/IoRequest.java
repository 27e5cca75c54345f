package dmsnap.target;

import java.lang.foreign.MemorySegment;

/**
 * One I/O to a mapped device or target (the bio of dmsnap), in sectors relative to the device
 * or target it is given to. READ and WRITE carry a buffer of exactly {@code lengthSectors * 512}
 * bytes; FLUSH has length 0 and no buffer; DISCARD and WRITE_ZEROES have no buffer.
 *
 * @param fua the write must be durable when it completes (REQ_FUA)
 */
public record IoRequest(Op op, long sector, long lengthSectors, MemorySegment buffer, boolean fua) {

    /** What the request does. */
    public enum Op {
        READ,
        WRITE,
        FLUSH,
        DISCARD,
        WRITE_ZEROES
    }

    public IoRequest {
        if (sector < 0 || lengthSectors < 0) {
            throw new IllegalArgumentException("negative sector or length: " + sector + "+" + lengthSectors);
        }
        boolean data = op == Op.READ || op == Op.WRITE;
        if (data && (buffer == null || buffer.byteSize() != lengthSectors << 9)) {
            throw new IllegalArgumentException(
                    op + " of " + lengthSectors + " sectors needs a buffer of " + (lengthSectors << 9) + " bytes");
        }
        if (!data && buffer != null) {
            throw new IllegalArgumentException(op + " carries no buffer");
        }
    }

    public static IoRequest read(long sector, MemorySegment buffer) {
        return new IoRequest(Op.READ, sector, buffer.byteSize() >>> 9, buffer, false);
    }

    public static IoRequest write(long sector, MemorySegment buffer, boolean fua) {
        return new IoRequest(Op.WRITE, sector, buffer.byteSize() >>> 9, buffer, fua);
    }

    public static IoRequest flush() {
        return new IoRequest(Op.FLUSH, 0, 0, null, false);
    }

    public long endSector() {
        return sector + lengthSectors;
    }

    /** The part {@code [fromSector, fromSector + sectors)} of this request, re-based to {@code newSector}. */
    public IoRequest slice(long fromSector, long sectors, long newSector) {
        MemorySegment part = buffer == null ? null : buffer.asSlice((fromSector - sector) << 9, sectors << 9);
        return new IoRequest(op, newSector, sectors, part, fua);
    }

    /** The same request without FUA (its durability then comes from a flush afterwards). */
    public IoRequest withoutFua() {
        return fua ? new IoRequest(op, sector, lengthSectors, buffer, false) : this;
    }

    public boolean isWrite() {
        return op == Op.WRITE || op == Op.DISCARD || op == Op.WRITE_ZEROES;
    }
}
