package dmsnap.target;

import dmsnap.store.device.Device;
import java.io.IOException;

/**
 * How a target gets the devices its table line names (the kernel's {@code dm_get_device}):
 * a file, a block device or another mapped device, each opened once and shared by every target
 * that names it. Implemented by {@code dmsnap.device.BackingDevices}; targets see only this, so
 * the target package does not depend on the device package that builds mapped devices out of
 * targets.
 */
public interface DeviceResolver {

    /** What a device argument names. */
    enum Kind {
        BLOCK_DEVICE,
        FILE,
        MAPPED_DEVICE
    }

    /** What makes two device arguments the same device. */
    record Identity(Kind kind, long first, long second) {}

    /**
     * How a target uses a device (the kernel's {@code dm_get_device} mode): {@code READ} for one
     * that never writes it (a {@code snapshot}'s origin, any device of a read-only table).
     */
    enum Access {
        READ,
        WRITE
    }

    /** A target's use of a device; closing it releases that use (the last one closes the device). */
    interface Handle extends AutoCloseable {
        Device device();

        Identity identity();

        /** How table status names it: {@code major:minor} for a block device, the real path for a file. */
        String canonicalName();

        @Override
        void close() throws IOException;
    }

    /**
     * Opens (or shares) the device {@code argument} names for {@code access}.
     *
     * @throws IOException it does not exist, is not a file or block device, someone else holds it,
     *                     or it refuses the writes {@code access} needs
     */
    Handle open(String argument, Access access) throws IOException;

    /** The device argument that names mapped device {@code name} ({@code dm:NAME}). */
    static String mappedArgument(String name) {
        return "dm:" + name;
    }
}
