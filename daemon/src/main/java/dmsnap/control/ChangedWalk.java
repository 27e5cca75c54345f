package dmsnap.control;

import dmsnap.device.MappedDevice;
import java.io.IOException;

/**
 * The walk behind {@code changed}: a device's change map since a baseline ({@link
 * MappedDevice#changedRuns}) as byte extents, neighbours merged, in parts of at most {@link
 * #PART_EXTENTS} extents. Each part is one pass through the device's gate, and is handed on
 * after it: a client that reads slowly holds up neither a suspend of the device (which waits
 * for a pass in progress) nor more than a part in the daemon's memory. Each part answers as of
 * its own pass, as consecutive NBD block status requests do.
 */
final class ChangedWalk {
    static final int PART_EXTENTS = 8192;

    private final long[] offsets;
    private final long[] lengths;
    private int count;
    /** The next sector to walk. */
    private long at;
    /** The changed extent still growing, in sectors; {@code openLength} 0 when there is none. */
    private long openStart;

    private long openLength;
    private long changedSectors;

    private ChangedWalk(int partExtents) {
        offsets = new long[partExtents];
        lengths = new long[partExtents];
    }

    /** Walks {@code device} since {@code baseline} into {@code out}, start to end. */
    static void walk(MappedDevice device, String baseline, ChangedExtents out)
            throws IOException, InterruptedException {
        walk(device, baseline, out, PART_EXTENTS);
    }

    /** The same in parts of at most {@code partExtents} (at least 2) extents. */
    static void walk(MappedDevice device, String baseline, ChangedExtents out, int partExtents)
            throws IOException, InterruptedException {
        if (partExtents < 2) {
            throw new IllegalArgumentException("parts of " + partExtents + " extents");
        }
        long size = device.sizeSectors();
        out.start(device.name(), baseline, size << 9);
        ChangedWalk w = new ChangedWalk(partExtents);
        while (w.at < size) {
            device.changedRuns(baseline, w.at, size - w.at, w::run);
            w.handOn(out);
        }
        w.close();
        w.handOn(out);
        out.end(w.changedSectors << 9);
    }

    /** Takes a run; false once the part is full but for the place the growing extent may need at the end. */
    private boolean run(long sectors, boolean changed) {
        if (changed) {
            changedSectors += sectors;
            if (openLength > 0 && openStart + openLength == at) {
                openLength += sectors;
            } else {
                close();
                openStart = at;
                openLength = sectors;
            }
        }
        at += sectors;
        return count < offsets.length - 1;
    }

    /** The growing extent is complete. */
    private void close() {
        if (openLength > 0) {
            offsets[count] = openStart;
            lengths[count] = openLength;
            count++;
            openLength = 0;
        }
    }

    private void handOn(ChangedExtents out) throws IOException {
        for (int i = 0; i < count; i++) {
            out.extent(offsets[i] << 9, lengths[i] << 9);
        }
        count = 0;
    }
}
