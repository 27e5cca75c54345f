package dmsnap.store.device;

/**
 * A run of a device's bytes that is all data or all hole, as {@link Device#extentAt} reports
 * it. A hole reads as zeroes and has no storage behind it (a sparse file's unallocated blocks);
 * data is everything else, including blocks that happen to hold zeroes.
 */
public record Extent(long lengthBytes, boolean hole) {
    public Extent {
        if (lengthBytes <= 0) {
            throw new IllegalArgumentException("an extent of " + lengthBytes + " bytes");
        }
    }

    public static Extent data(long lengthBytes) {
        return new Extent(lengthBytes, false);
    }

    public static Extent hole(long lengthBytes) {
        return new Extent(lengthBytes, true);
    }
}
