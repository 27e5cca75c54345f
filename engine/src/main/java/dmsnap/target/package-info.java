/**
 * Targets ({@code struct target_type} of {@code device-mapper.h}): the constructor from table
 * arguments with the kernel's checks and sentences ({@link dmsnap.target.TargetArgs}), the map
 * function, status in both forms (INFO as {@link dmsnap.target.TargetStatus} values, TABLE as the
 * arguments a target prints; {@link dmsnap.target.StatusText} alone renders them as dmsetup text),
 * and the suspend/resume hooks. Registry by name:
 * {@link dmsnap.target.TargetTypes}. Simple targets here ({@code linear}, {@code zero},
 * {@code error}); the snapshot targets live in dmsnap.snapshot.
 *
 * <p>An I/O is an {@link dmsnap.target.IoRequest} (the bio). A target reaches the devices its
 * line names only through {@link dmsnap.target.DeviceResolver} ({@code dm_get_device}), which
 * dmsnap.device implements: this package depends on no other engine package but dmsnap.table,
 * and dmsnap.device (mapped devices built from targets) depends on it, not the other way round.
 */
package dmsnap.target;
