package dmsnap.store;

/**
 * What {@code dmsetup status} prints for a valid snapshot:
 * {@code <allocatedSectors>/<totalSectors> <metadataSectors>}.
 *
 * @param allocatedSectors sectors handed out, header and metadata included
 * @param totalSectors     the COW device's current size in sectors
 * @param metadataSectors  header and area sectors
 */
public record StoreUsage(long allocatedSectors, long totalSectors, long metadataSectors) {
    /** {@code 16/8192 16}. */
    public String statusString() {
        return allocatedSectors + "/" + totalSectors + " " + metadataSectors;
    }
}
