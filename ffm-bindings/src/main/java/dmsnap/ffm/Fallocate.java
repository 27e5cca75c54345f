package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;

/** The {@code fallocate} modes dmsnap uses. */
public enum Fallocate {
    /** Mode 0: allocate blocks, extending the file if needed. */
    ALLOCATE,
    /** FALLOC_FL_KEEP_SIZE: allocate blocks without changing the file size. */
    KEEP_SIZE,
    /** FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: deallocate; the range reads back as zeroes. */
    PUNCH_HOLE,
    /** FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE: the range reads back as zeroes, blocks stay allocated. */
    ZERO_RANGE;

    int toNative() {
        return switch (this) {
            case ALLOCATE -> 0;
            case KEEP_SIZE -> LinuxConstants.FALLOC_FL_KEEP_SIZE;
            case PUNCH_HOLE -> LinuxConstants.FALLOC_FL_PUNCH_HOLE | LinuxConstants.FALLOC_FL_KEEP_SIZE;
            case ZERO_RANGE -> LinuxConstants.FALLOC_FL_ZERO_RANGE | LinuxConstants.FALLOC_FL_KEEP_SIZE;
        };
    }
}
