package dmsnap.ffm;

/**
 * A block device's geometry: {@code BLKGETSIZE64}, {@code BLKSSZGET}, {@code BLKPBSZGET}.
 *
 * @param sizeBytes          device size in bytes
 * @param logicalBlockBytes  the smallest addressable unit (512 or 4096); O_DIRECT alignment
 * @param physicalBlockBytes the unit the device writes atomically
 */
public record BlockGeometry(long sizeBytes, int logicalBlockBytes, int physicalBlockBytes) {}
