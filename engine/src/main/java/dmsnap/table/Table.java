package dmsnap.table;

import java.util.List;

/** An ordered, gap-free list of lines starting at sector 0. Built by {@link TableParser}. */
public record Table(List<TableLine> lines) {
    public Table {
        lines = List.copyOf(lines);
    }

    /** The mapped device's size in sectors. */
    public long lengthSectors() {
        return lines.isEmpty() ? 0 : lines.getLast().endSector();
    }

    /** Whether an argument of some line is exactly {@code argument} (a device argument such as {@code dm:NAME}). */
    public boolean hasArgument(String argument) {
        return lines.stream().anyMatch(l -> l.args().contains(argument));
    }

    /**
     * This table with every argument that is exactly {@code from} replaced by {@code to} (this
     * table when none is): a device argument naming a device by a name it no longer has.
     */
    public Table replacingArgument(String from, String to) {
        if (!hasArgument(from)) {
            return this;
        }
        return new Table(lines.stream()
                .map(l -> new TableLine(
                        l.startSector(),
                        l.lengthSectors(),
                        l.targetType(),
                        l.args().stream().map(a -> a.equals(from) ? to : a).toList()))
                .toList());
    }

    /** One line per target, as dmsetup's input. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (TableLine line : lines) {
            sb.append(line).append('\n');
        }
        return sb.toString();
    }
}
