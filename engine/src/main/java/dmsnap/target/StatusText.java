package dmsnap.target;

import dmsnap.table.TableLine;
import java.util.List;

/**
 * The dmsetup rendering of target status, the only place where it becomes the kernel's text:
 * {@code dmsetup status} lines from {@link TargetStatus} values, {@code dmsetup table} lines
 * from the arguments targets print ({@link Target#tableArgs}). Byte for byte what the kernel
 * prints (spec 6).
 */
public final class StatusText {
    private StatusText() {}

    /** The INFO text after {@code <start> <length> <type> }: {@code 16/8192 16}, {@code Invalid}, or empty. */
    public static String info(TargetStatus status) {
        return switch (status) {
            case TargetStatus.Empty e -> "";
            case SnapshotStatus.Invalid i -> "Invalid";
            case SnapshotStatus.MergeFailed m -> "Merge failed";
            case SnapshotStatus.Overflow o -> "Overflow";
            case SnapshotStatus.Usage u -> u.allocatedSectors() + "/" + u.totalSectors() + " " + u.metadataSectors();
        };
    }

    /** The TABLE text after {@code <start> <length> <type> }: the arguments, one space apart. */
    public static String table(List<String> args) {
        return String.join(" ", args);
    }

    /** A {@code dmsetup status} line: {@code <start> <length> <type> <status>}, the space before an empty status kept. */
    public static String infoLine(long startSector, long lengthSectors, String targetType, TargetStatus status) {
        return startSector + " " + lengthSectors + " " + targetType + " " + info(status);
    }

    /** A {@code dmsetup table} line from a line as its target prints it, the space before empty arguments kept. */
    public static String tableLine(TableLine printed) {
        return printed.startSector() + " " + printed.lengthSectors() + " " + printed.targetType() + " "
                + table(printed.args());
    }
}
