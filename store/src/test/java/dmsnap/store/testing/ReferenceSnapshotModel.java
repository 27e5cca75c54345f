package dmsnap.store.testing;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What an origin and its snapshots must read, in plain byte arrays: a snapshot is the origin
 * as it was when the snapshot was created, plus the snapshot's own writes; origin writes never
 * show in a snapshot, snapshot writes never in the origin. Synchronised: threads may share it
 * as long as each writes its own sectors.
 */
public final class ReferenceSnapshotModel {
    private final byte[] origin;
    private final Map<String, byte[]> snapshots = new LinkedHashMap<>();

    public ReferenceSnapshotModel(byte[] initialOrigin) {
        this.origin = initialOrigin.clone();
    }

    public synchronized void createSnapshot(String name) {
        snapshots.put(name, origin.clone());
    }

    public synchronized void removeSnapshot(String name) {
        snapshots.remove(name);
    }

    /**
     * snapshot-merge of {@code name} (lvconvert --merge): from now on the origin reads the
     * snapshot's view and the snapshot is gone; the other snapshots keep theirs.
     */
    public synchronized void mergeSnapshot(String name) {
        byte[] view = view(name);
        System.arraycopy(view, 0, origin, 0, origin.length);
        snapshots.remove(name);
    }

    /** Writes {@code data} at {@code sector} of {@code device}: "origin" or a snapshot's name. */
    public synchronized void write(String device, long sector, byte[] data) {
        System.arraycopy(data, 0, view(device), (int) (sector << 9), data.length);
    }

    /** What {@code device} must read at {@code sector}. */
    public synchronized byte[] read(String device, long sector, int bytes) {
        int from = (int) (sector << 9);
        return Arrays.copyOfRange(view(device), from, from + bytes);
    }

    public synchronized Iterable<String> snapshotNames() {
        return java.util.List.copyOf(snapshots.keySet());
    }

    private byte[] view(String device) {
        byte[] v = device.equals("origin") ? origin : snapshots.get(device);
        if (v == null) {
            throw new IllegalArgumentException("no device " + device + " in the model");
        }
        return v;
    }
}
