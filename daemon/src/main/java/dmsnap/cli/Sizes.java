package dmsnap.cli;

import java.util.Locale;

/** Sizes on the command line: bytes, or with a binary suffix (K, M, G, T; KiB... also accepted) or s for sectors. */
final class Sizes {
    private Sizes() {}

    static long parseBytes(String text) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        long multiplier = 1;
        String digits = t;
        if (t.endsWith("s")) {
            multiplier = 512;
            digits = t.substring(0, t.length() - 1);
        } else {
            String unit = t.replaceAll("^[0-9]+", "");
            digits = t.substring(0, t.length() - unit.length());
            multiplier = switch (unit) {
                case "", "b" -> 1;
                case "k", "kb", "kib" -> 1L << 10;
                case "m", "mb", "mib" -> 1L << 20;
                case "g", "gb", "gib" -> 1L << 30;
                case "t", "tb", "tib" -> 1L << 40;
                default ->
                    throw new IllegalArgumentException("unknown size unit in '" + text + "' (use K, M, G, T or s)");
            };
        }
        if (digits.isEmpty() || !digits.chars().allMatch(Character::isDigit)) {
            throw new IllegalArgumentException("not a size: '" + text + "'");
        }
        return Math.multiplyExact(Long.parseLong(digits), multiplier);
    }
}
