package dmsnap.device;

import dmsnap.target.TargetStatus;

/**
 * One line of {@code dmsetup status} as values: where the line is, its target type and what the
 * target reports. {@link dmsnap.target.StatusText} renders it.
 */
public record StatusLine(long startSector, long lengthSectors, String targetType, TargetStatus status) {}
