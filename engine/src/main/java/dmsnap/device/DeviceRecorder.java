package dmsnap.device;

import dmsnap.table.Table;
import dmsnap.target.CacheMode;
import java.util.List;

/**
 * Makes a change of a device durable before it takes effect, as LVM commits its metadata before
 * it changes a device-mapper device: when a method throws, the change is refused and nothing
 * changed. Each method runs under the device's control lock ({@link #beforeRename} also under the
 * device manager's), so no other change of the device comes in between.
 */
public interface DeviceRecorder {
    /** Records nothing: tests, the embedded engine, and the daemon's own restore and shutdown. */
    DeviceRecorder NONE = new DeviceRecorder() {};

    /**
     * {@code table} is about to become the device's live table (resume swaps it in), read-only
     * when {@code readOnly}, its snapshot writes acknowledged as {@code cacheMode} says.
     */
    default void beforeLive(MappedDevice device, Table table, boolean readOnly, CacheMode cacheMode)
            throws DmException {}

    /**
     * A device whose tables name a device being renamed ({@code dm:NAME}), and its live table
     * with the new name: the kernel references a device by its number, so a rename never affects
     * the devices that use it, and here their tables follow the new name.
     */
    record Dependent(MappedDevice device, Table liveTable) {}

    /**
     * The device, whose live table is {@code device.liveTable()} (maybe null), is about to be
     * named {@code newName}, and each of the {@code dependents} (devices whose live table names
     * it) is about to have the live table given there. One step: when it throws, none of it
     * happens.
     */
    default void beforeRename(MappedDevice device, String newName, List<Dependent> dependents) throws DmException {}

    /** The device is about to be removed (it is not open, or the remove is forced). */
    default void beforeRemove(MappedDevice device) throws DmException {}
}
