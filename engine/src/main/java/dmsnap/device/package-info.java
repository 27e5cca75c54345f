/**
 * Mapped devices ({@code dm.c}, {@code dm-ioctl.c}): {@link dmsnap.device.MappedDevice} with
 * live and inactive tables, suspend/resume through {@link dmsnap.device.IoGate}, and {@link
 * dmsnap.device.DeviceManager} (name to device). Backing files and block devices are opened once
 * per identity and shared by every target that names them ({@link dmsnap.device.BackingDevices},
 * the targets' {@link dmsnap.target.DeviceResolver}).
 * A {@link dmsnap.device.DeviceRecorder} given to resume, rename and remove records the change
 * before it takes effect (the daemon's state directory) and can refuse it.
 *
 * <p>Lock order: DeviceManager, then a MappedDevice's control lock, then (in dmsnap.snapshot)
 * Registry, Origin, Snapshot. I/O never takes the control locks; it passes the IoGate.
 */
package dmsnap.device;
