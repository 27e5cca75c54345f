package dmsnap.store.copy;

import dmsnap.store.device.Device;
import java.util.List;

/**
 * Copy {@code lengthBytes} at {@code sourceOffsetBytes} of {@code source} to every destination.
 * Offsets and length must suit every device's logical block size.
 */
public record CopyOp(Device source, long sourceOffsetBytes, long lengthBytes, List<Destination> destinations) {

    /** Where one copy goes. */
    public record Destination(Device device, long offsetBytes) {}

    public CopyOp {
        destinations = List.copyOf(destinations);
        if (lengthBytes <= 0 || destinations.isEmpty()) {
            throw new IllegalArgumentException("a copy needs a length and at least one destination");
        }
    }
}
