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
