package dmsnap.table;

import java.util.List;

/**
 * One line of a table: sectors {@code [startSector, startSector + lengthSectors)} of the mapped
 * device go to target {@code targetType} with {@code args}.
 */
public record TableLine(long startSector, long lengthSectors, String targetType, List<String> args) {
    public TableLine {
        args = List.copyOf(args);
    }

    public long endSector() {
        return startSector + lengthSectors;
    }

    /** {@code 0 16384 snapshot /img/base /img/cow P 8}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder()
                .append(startSector)
                .append(' ')
                .append(lengthSectors)
                .append(' ')
                .append(targetType);
        for (String a : args) {
            sb.append(' ').append(a);
        }
        return sb.toString();
    }
}
