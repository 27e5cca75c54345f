package dmsnap.target;

/**
 * What a target reports for {@code dmsetup status} (INFO), as values: the kernel prints it as
 * text, libdm's {@code dm_get_status_*} read it back; here the values travel and only
 * {@link StatusText} turns them into the kernel's strings.
 */
public sealed interface TargetStatus permits TargetStatus.Empty, SnapshotStatus {

    /** The status of a target that reports nothing ({@code linear}, {@code zero}, {@code error}, {@code snapshot-origin}). */
    TargetStatus EMPTY = new Empty();

    /** Nothing to report: the kernel prints an empty string (spec 6.3). */
    record Empty() implements TargetStatus {}
}
