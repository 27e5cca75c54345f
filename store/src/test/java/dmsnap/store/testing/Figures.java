package dmsnap.store.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The figures a reliability test reports (cases run, faults injected, writes checked): printed,
 * and appended to the file {@code $DMSNAP_FIGURES} names when the suite runs under
 * {@code ./test.sh}, from which {@code scripts/reliability-report.sh} writes RELIABILITY.md. One
 * line per figure, {@code key<TAB>value}; a later line with the same key replaces an earlier one.
 */
public final class Figures {
    private Figures() {}

    /** Records figure {@code key} (a dotted name such as {@code fuzz.cow-image.cases}) as {@code value}. */
    public static void record(String key, Object value) {
        String text = String.valueOf(value);
        if (key.isBlank() || key.contains("\t") || text.contains("\t") || text.contains("\n")) {
            throw new IllegalArgumentException("a figure is one line without tabs: " + key + " = " + text);
        }
        System.out.println("figure " + key + " = " + text);
        String file = System.getenv("DMSNAP_FIGURES");
        if (file == null || file.isBlank()) {
            return;
        }
        try {
            // One small O_APPEND write: lines of test JVMs running side by side do not interleave.
            Files.write(
                    Path.of(file),
                    (key + "\t" + text + "\n").getBytes(StandardCharsets.UTF_8),
                    StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND,
                    StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new UncheckedIOException("recording figure " + key + " in " + file, e);
        }
    }
}
