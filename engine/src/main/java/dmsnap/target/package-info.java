/**
 * Targets ({@code struct target_type} of {@code device-mapper.h}): the constructor from table
 * arguments with the kernel's checks and sentences ({@link dmsnap.target.TargetArgs}), the map
 * function, status in both forms, and the suspend/resume hooks. Registry by name:
 * {@link dmsnap.target.TargetTypes}. Simple targets here ({@code linear}, {@code zero},
 * {@code error}); the snapshot targets live in dmsnap.snapshot.
 */
package dmsnap.target;
