package dmsnap.ffm;

/**
 * What statx says about an open file.
 *
 * @param type            regular file, block device, ...
 * @param sizeBytes       {@code stx_size} (0 for a block device: use {@link BlockDevices#geometry})
 * @param deviceMajor     major of the device holding the inode ({@code stx_dev_major})
 * @param deviceMinor     minor of the device holding the inode
 * @param inode           {@code stx_ino}
 * @param rdevMajor       for a block device, its own major ({@code stx_rdev_major}), else 0
 * @param rdevMinor       for a block device, its own minor, else 0
 * @param blockSizeBytes  preferred I/O size ({@code stx_blksize})
 * @param dioMemAlign     O_DIRECT buffer alignment from STATX_DIOALIGN, 0 when the kernel did not say
 * @param dioOffsetAlign  O_DIRECT offset/length alignment from STATX_DIOALIGN, 0 when unknown
 * @param allocatedBytes  bytes the file system has allocated to the file ({@code stx_blocks} x 512):
 *                        below {@code sizeBytes} for a sparse file
 */
public record FileStat(
        FileType type,
        long sizeBytes,
        int deviceMajor,
        int deviceMinor,
        long inode,
        int rdevMajor,
        int rdevMinor,
        int blockSizeBytes,
        int dioMemAlign,
        int dioOffsetAlign,
        long allocatedBytes) {}
