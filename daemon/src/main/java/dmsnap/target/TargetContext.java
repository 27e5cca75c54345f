package dmsnap.target;

import dmsnap.device.BackingDevices;

/**
 * What a target constructor may use besides its arguments: the shared backing devices, the
 * name of the mapped device it is loaded into, and the length of its line.
 */
public record TargetContext(BackingDevices devices, String deviceName, long lengthSectors) {
}
