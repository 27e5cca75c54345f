package dmsnap.table;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * dmsetup table text to {@link Table}: one {@code <start> <length> <target> [args...]} line
 * per target, blank lines and {@code #} comments ignored, whitespace-separated words. The lines
 * must start at sector 0 and follow each other without gaps (the kernel's "Gap in table"), none
 * may be empty ("zero-length target"), and the table may not end past {@link #MAX_SECTORS}
 * ("too large device").
 */
public final class TableParser {
    /** LLONG_MAX >> 9: the kernel refuses a table that ends past it (its size in bytes would not fit). */
    public static final long MAX_SECTORS = Long.MAX_VALUE >> 9;

    private TableParser() {}

    public static Table parse(String text) throws TableLoadException {
        List<TableLine> lines = new ArrayList<>();
        long expectedStart = 0;
        for (String raw : text.split("\n", -1)) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] words = line.split("\\s+");
            if (words.length < 3) {
                throw new TableLoadException(null, "Invalid format on line " + (lines.size() + 1) + ": " + shown(line));
            }
            long start = sectors(words[0], "start", line);
            long length = sectors(words[1], "length", line);
            String type = words[2];
            if (length == 0) {
                throw new TableLoadException(type, "zero-length target");
            }
            if (start != expectedStart) {
                throw new TableLoadException(type, "Gap in table");
            }
            if (length > MAX_SECTORS - start) {
                throw new TableLoadException(null, "too large device");
            }
            lines.add(new TableLine(start, length, type, Arrays.asList(words).subList(3, words.length)));
            expectedStart = start + length;
        }
        if (lines.isEmpty()) {
            throw new TableLoadException(null, "empty table");
        }
        return new Table(lines);
    }

    private static long sectors(String word, String what, String line) throws TableLoadException {
        if (word.isEmpty() || !word.chars().allMatch(c -> c >= '0' && c <= '9') || word.length() > 18) {
            throw new TableLoadException(null, "Invalid " + what + " '" + shown(word) + "' in line: " + shown(line));
        }
        return Long.parseLong(word);
    }

    /** At most this many characters of the input are quoted in an error. */
    private static final int SHOWN_CHARS = 200;

    /**
     * Input quoted in an error: control characters (a carriage return would start a second line
     * on a terminal) and line separators escaped, and cut short.
     */
    private static String shown(String text) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            if (b.length() >= SHOWN_CHARS) {
                return b.append("...").toString();
            }
            char c = text.charAt(i);
            if (Character.getType(c) == Character.CONTROL || c == '\u2028' || c == '\u2029') {
                b.append(c < 0x100 ? String.format("\\x%02x", (int) c) : String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
