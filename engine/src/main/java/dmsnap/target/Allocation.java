package dmsnap.target;

import dmsnap.store.device.Extent;

/**
 * What a run of a device's or target's sectors is backed by, as block status reports it
 * (NBD's {@code base:allocation}): data, or a hole that reads as zeroes with nothing stored.
 *
 * @param depth which layer holds the data: 0 a hole, 1 the device's own storage (a snapshot's
 *     exception, a file's data), 2 or more the layers under it (a snapshot's origin); what
 *     qemu's {@code qemu:allocation-depth} reports
 */
public record Allocation(long sectors, int depth) {
    public Allocation {
        if (sectors <= 0 || depth < 0) {
            throw new IllegalArgumentException("an allocation of " + sectors + " sectors at depth " + depth);
        }
    }

    public static Allocation hole(long sectors) {
        return new Allocation(sectors, 0);
    }

    public static Allocation data(long sectors) {
        return new Allocation(sectors, 1);
    }

    /** A device's extent in sectors (its length rounded down to whole sectors, at least one). */
    public static Allocation of(Extent extent) {
        long sectors = Math.max(1, extent.lengthBytes() >>> 9);
        return extent.hole() ? hole(sectors) : data(sectors);
    }

    public boolean isHole() {
        return depth == 0;
    }

    /** The same run seen from one layer up (a snapshot's view of its origin). */
    public Allocation below() {
        return isHole() ? this : new Allocation(sectors, depth + 1);
    }

    public Allocation withSectors(long newSectors) {
        return new Allocation(newSectors, depth);
    }
}
