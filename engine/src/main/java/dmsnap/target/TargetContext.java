package dmsnap.target;

/**
 * What a target constructor may use besides its arguments: the shared backing devices, the
 * name of the mapped device it is loaded into, the length of its line, how to raise a device
 * event (dm_table_event, e.g. when a snapshot is invalidated), whether that device is
 * suspended right now (a handover needs its source suspended), whether the table is
 * read-only ({@code dmsetup --readonly}: its devices are opened for reading), and its
 * {@link CacheMode} (when a snapshot write is acknowledged).
 */
public record TargetContext(
        DeviceResolver devices,
        String deviceName,
        long lengthSectors,
        Runnable event,
        java.util.function.BooleanSupplier deviceSuspended,
        boolean readOnlyTable,
        CacheMode cacheMode) {

    public TargetContext {
        java.util.Objects.requireNonNull(cacheMode, "cacheMode");
    }

    /**
     * Opens a device argument for this target ({@code dm_get_device}). A table may not name the
     * device it is loaded into: the kernel refuses that with EINVAL, and here the device would
     * hold itself open (and map its I/O onto itself).
     */
    public DeviceResolver.Handle open(String argument, DeviceResolver.Access access) throws java.io.IOException {
        if (argument.equals(DeviceResolver.mappedArgument(deviceName))) {
            throw new java.io.IOException(argument + " is the device being loaded");
        }
        return devices.open(argument, access);
    }

    /** The table's mode ({@code dm_table_get_mode}) as the access to open a device with. */
    public DeviceResolver.Access tableAccess() {
        return readOnlyTable ? DeviceResolver.Access.READ : DeviceResolver.Access.WRITE;
    }
}
