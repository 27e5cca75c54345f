package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;

/** The block-device ioctls dmsnap uses; each fails with ENOTTY on a regular file. */
public final class BlockDevices {
    private BlockDevices() {}

    /** {@code BLKGETSIZE64}, {@code BLKSSZGET} and {@code BLKPBSZGET}. */
    public static BlockGeometry geometry(NativeFile device) throws ErrnoException {
        long size = device.ioctlValue("BLKGETSIZE64", LinuxConstants.BLKGETSIZE64, true);
        int logical = (int) device.ioctlValue("BLKSSZGET", LinuxConstants.BLKSSZGET, false);
        int physical = (int) device.ioctlValue("BLKPBSZGET", LinuxConstants.BLKPBSZGET, false);
        return new BlockGeometry(size, logical, physical);
    }

    /** {@code BLKDISCARD}: the range may read back as zeroes or as old data, per device. */
    public static void discard(NativeFile device, long offsetBytes, long lengthBytes) throws ErrnoException {
        device.ioctlRange("BLKDISCARD", LinuxConstants.BLKDISCARD, offsetBytes, lengthBytes);
    }

    /** {@code BLKZEROOUT}: the range reads back as zeroes. */
    public static void zeroOut(NativeFile device, long offsetBytes, long lengthBytes) throws ErrnoException {
        device.ioctlRange("BLKZEROOUT", LinuxConstants.BLKZEROOUT, offsetBytes, lengthBytes);
    }
}
