package dmsnap.target;

import dmsnap.store.device.Device;
import dmsnap.table.TableLoadException;
import java.io.IOException;
import java.util.List;

/** {@code linear <dev> <offset>}: sector s maps to sector {@code offset + s} of dev ({@code dm-linear.c}). */
public final class LinearTarget implements Target {
    public static final TargetType TYPE = new TargetType() {
        @Override
        public String name() {
            return "linear";
        }

        @Override
        public String version() {
            return "1.4.0";
        }

        @Override
        public Target create(TargetContext context, TargetArgs args) throws TableLoadException {
            if (args.size() != 2) {
                throw args.fail("Invalid argument count");
            }
            String deviceArg = args.next();
            long offset = args.nextUnsigned("Invalid device sector");
            DeviceResolver.Handle handle;
            try {
                handle = context.open(deviceArg, context.tableAccess());
            } catch (IOException e) {
                throw args.failDevice("Device lookup failed: " + e.getMessage(), e);
            }
            long deviceSectors = handle.device().sizeSectors();
            // The kernel's device_area_is_invalid: also a start at or past the end (offset + length may overflow).
            if (offset >= deviceSectors || context.lengthSectors() > deviceSectors - offset) {
                closeQuietly(handle);
                throw args.fail("Device " + handle.canonicalName() + " too small for target: start=" + offset + ", len="
                        + context.lengthSectors() + ", dev_size="
                        + handle.device().sizeSectors());
            }
            return new LinearTarget(handle, offset);
        }
    };

    private final DeviceResolver.Handle handle;
    private final Device device;
    private final long offsetSectors;

    private LinearTarget(DeviceResolver.Handle handle, long offsetSectors) {
        this.handle = handle;
        this.device = handle.device();
        this.offsetSectors = offsetSectors;
    }

    @Override
    public String typeName() {
        return "linear";
    }

    @Override
    public void map(IoRequest io) throws IOException {
        long at = (offsetSectors + io.sector()) << 9;
        switch (io.op()) {
            case READ -> device.read(at, io.buffer());
            case WRITE -> {
                device.write(at, io.buffer());
                if (io.fua()) {
                    device.flush();
                }
            }
            case FLUSH -> device.flush();
            case DISCARD -> device.discard(at, io.lengthSectors() << 9);
            case WRITE_ZEROES -> device.writeZeroes(at, io.lengthSectors() << 9);
        }
    }

    @Override
    public boolean readIfCached(IoRequest io) throws IOException {
        return device.readIfCached((offsetSectors + io.sector()) << 9, io.buffer());
    }

    @Override
    public Allocation allocation(long sector, long maxSectors) throws IOException {
        return Allocation.of(device.extentAt((offsetSectors + sector) << 9, maxSectors << 9));
    }

    @Override
    public int logicalBlockBytes() {
        return device.logicalBlockBytes();
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    /** {@code <dev> <offset>}, the device by its canonical name, as dm-linear prints it. */
    @Override
    public List<String> tableArgs() {
        return List.of(handle.canonicalName(), Long.toString(offsetSectors));
    }

    @Override
    public void close() throws IOException {
        handle.close();
    }

    static void closeQuietly(DeviceResolver.Handle handle) {
        try {
            handle.close();
        } catch (IOException e) {
            // Releasing a device we only just opened; the constructor's own error is what matters.
        }
    }
}
