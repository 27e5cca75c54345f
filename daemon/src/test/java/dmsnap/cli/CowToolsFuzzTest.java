package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dmsnap.store.testing.CowMutator;
import dmsnap.store.testing.CowMutator.CowImage;
import dmsnap.store.testing.CowMutator.Mutant;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * Hostile COW images ({@link CowMutator}) through {@code dmsnap cow check} (with and without
 * {@code --origin}, text and {@code --json}), {@code cow dump} (text and {@code --json}) and
 * {@code cow read}, driven through the CLI's own picocli command line. Seeded
 * ({@code -Ddmsnap.tests.seed}), bounded in count ({@code dmsnap.tests.cowToolsFuzzCases}) and
 * time ({@code dmsnap.tests.cowToolsFuzzMillis}), both scaled by {@code dmsnap.tests.fuzzScale}.
 *
 * <p>Per command: the COW is unchanged byte for byte; nothing but an {@link IOException} escapes
 * the command; stderr is empty or exactly one line {@code dmsnap: <message>}, and a non-zero exit
 * goes with it unless check reports problems on stdout; JSON output parses. {@code cow read}
 * succeeds exactly when {@code cow check --origin} finds the COW clean and the header is a valid
 * snapshot's, and then writes the snapshot view, which the test rebuilds from the raw bytes; when
 * it fails it leaves no output file. At the end the origin is unchanged.
 */
@ExtendWith(Seeds.class)
class CowToolsFuzzTest {
    static final FuzzBudget BUDGET = FuzzBudget.of("cowToolsFuzz", 2000, 12_000);
    private static final Pattern VIEW_SHA = Pattern.compile("snapshot view sha256 ([0-9a-f]{64})");
    private static final Pattern CHECK_SUMMARY = Pattern.compile(".*: (clean.*|\\d+ problems?)");

    @TempDir
    Path dir;

    private volatile String current = "before the first case";
    private final TreeMap<String, Integer> outcomes = new TreeMap<>();
    private final ObjectMapper json = new ObjectMapper();

    /** One command's outcome; {@code thrown} is what reached picocli's execution exception handler. */
    record Run(String command, int exitCode, String out, String err, Exception thrown) {}

    /**
     * The CLI's own command line ({@link Main#commandLine}), built once and executed again for
     * every command (picocli resets every option before it parses; building it costs more than
     * most commands here), with what reached its execution exception handler recorded.
     */
    static final class Cli {
        private final StringWriter out = new StringWriter();
        private final StringWriter err = new StringWriter();
        private final AtomicReference<Exception> thrown = new AtomicReference<>();
        private final CommandLine cli = Main.commandLine(new PrintWriter(out, true), new PrintWriter(err, true));

        Cli() {
            CommandLine.IExecutionExceptionHandler handler = cli.getExecutionExceptionHandler();
            cli.setExecutionExceptionHandler((ex, c, parsed) -> {
                thrown.set(ex);
                return handler.handleExecutionException(ex, c, parsed);
            });
        }

        Run run(String... args) {
            out.getBuffer().setLength(0);
            err.getBuffer().setLength(0);
            thrown.set(null);
            int code = cli.execute(args);
            return new Run(String.join(" ", args), code, out.toString(), err.toString(), thrown.get());
        }
    }

    private final Cli cli = new Cli();

    @Test
    void mutatedCowsGetOneLineErrorsAndAreNeverWritten() {
        assertTimeoutPreemptively(BUDGET.hangGuard(), this::run, () -> "hung in " + current);
    }

    private void run() throws IOException {
        Random master = Seeds.random("cow-tools-fuzz");
        List<CowImage> seeds = CowMutator.seeds(master);
        Path origin = dir.resolve("origin.img");
        byte[] originBytes = new byte[(int) (CowMutator.ORIGIN_SECTORS * 512)];
        for (int s = 0; s < CowMutator.ORIGIN_SECTORS; s++) {
            ByteBuffer.wrap(originBytes, s * 512, 512).putLong(s).putLong(~s);
        }
        Files.write(origin, originBytes);
        Path cow = dir.resolve("cow.img");
        Path view = dir.resolve("view.raw");
        FuzzBudget.Clock clock = BUDGET.start();
        int cases = 0;
        for (; clock.more(cases); cases++) {
            long caseSeed = master.nextLong();
            Random r = new Random(caseSeed);
            Mutant m = CowMutator.mutate(seeds.get(r.nextInt(seeds.size())), r);
            String what = "case " + cases + " (case seed " + caseSeed + "): " + m.describe();
            current = what;
            Files.write(cow, m.bytes());

            List<String> check =
                    new ArrayList<>(List.of("cow", "check", cow.toString(), "--origin", origin.toString()));
            if (r.nextBoolean()) {
                check.add("--json");
            }
            Run checked = command(check, cow, m.bytes(), what);
            checkOutput(checked, what);
            if (r.nextInt(3) == 0) {
                checkOutput(command(List.of("cow", "check", cow.toString()), cow, m.bytes(), what), what);
            }
            Run dumped = command(
                    r.nextBoolean()
                            ? List.of("cow", "dump", cow.toString())
                            : List.of("cow", "dump", cow.toString(), "--json"),
                    cow,
                    m.bytes(),
                    what);
            dumpOutput(dumped, what);
            Run read = command(
                    List.of(
                            "cow",
                            "read",
                            "--origin",
                            origin.toString(),
                            "--cow",
                            cow.toString(),
                            "--out",
                            view.toString()),
                    cow,
                    m.bytes(),
                    what);
            readOutput(read, checked, m.bytes(), originBytes, view, what);
            Files.deleteIfExists(view);
        }
        assertTrue(Arrays.equals(originBytes, Files.readAllBytes(origin)), "the origin was written");
        System.out.printf(
                "COW tools fuzz: seed %d: %d cases in %d ms over %d seeds; exit codes: %s;"
                        + " reproduce with -Ddmsnap.tests.seed=%d%n",
                Seeds.seed(), cases, clock.elapsedMillis(), seeds.size(), outcomes, Seeds.seed());
        Figures.record(
                "fuzz.cow-tools.cases",
                cases + " mutated COWs through cow check/dump/read: exit codes " + new java.util.TreeMap<>(outcomes)
                        + ", 0 stack traces, 0 writes to the input");
        if (cases >= FuzzBudget.MIN_CASES) {
            assertTrue(
                    outcomes.getOrDefault("read 0", 0) > 0 && outcomes.getOrDefault("read 1", 0) > 0,
                    "cow read should both succeed and refuse: " + outcomes);
        }
    }

    /** Runs one command; the COW must be unchanged and stderr empty or one {@code dmsnap:} line. */
    private Run command(List<String> args, Path cow, byte[] bytes, String what) throws IOException {
        Run run = cli.run(args.toArray(String[]::new));
        String where = what + ": " + run.command();
        outcomes.merge(args.get(1) + (args.contains("--json") ? " --json " : " ") + run.exitCode(), 1, Integer::sum);
        byte[] now = Files.readAllBytes(cow);
        if (!Arrays.equals(bytes, now)) {
            fail(where + " wrote the COW (first difference at byte " + Arrays.mismatch(bytes, now) + ")");
        }
        if (run.thrown() != null && !(run.thrown() instanceof IOException)) {
            throw new AssertionError(where + ": " + run.thrown().getClass().getName() + " escaped", run.thrown());
        }
        assertFalse(
                run.out().contains("\tat ") || run.err().contains("\tat "), where + ": a stack trace: " + run.err());
        if (run.exitCode() == 0) {
            assertEquals("", run.err(), where + ": exit 0 with stderr");
        }
        if (!run.err().isEmpty()) {
            assertTrue(run.exitCode() != 0, where + ": stderr with exit 0");
            assertTrue(
                    run.err().endsWith("\n")
                            && run.err().indexOf('\n') == run.err().length() - 1,
                    where + ": more than one line on stderr: " + run.err());
            String message = run.err().strip();
            assertTrue(
                    message.startsWith("dmsnap: ")
                            && message.length() > "dmsnap: ".length()
                            && !message.equals("dmsnap: null")
                            && !message.contains("\r"),
                    where + ": stderr " + run.err());
        }
        return run;
    }

    private void checkOutput(Run run, String what) throws IOException {
        String where = what + ": " + run.command();
        switch (run.exitCode()) {
            case 0, CowCheckCommand.PROBLEMS -> {
                assertEquals("", run.err(), where);
                boolean clean = run.exitCode() == 0;
                if (run.command().endsWith("--json")) {
                    JsonNode tree = json.readTree(run.out());
                    assertEquals(clean, tree.get("problems").isEmpty(), where + ": " + run.out());
                } else {
                    String[] lines = run.out().split("\n");
                    Matcher summary = CHECK_SUMMARY.matcher(lines[lines.length - 1]);
                    assertTrue(
                            summary.matches() && summary.group(1).startsWith("clean") == clean,
                            where + ": the last line: " + run.out());
                }
            }
            case CowCheckCommand.UNREADABLE -> assertFalse(run.err().isEmpty(), where);
            default -> fail(where + ": exit " + run.exitCode() + ": " + run.err());
        }
    }

    private void dumpOutput(Run run, String what) throws IOException {
        String where = what + ": " + run.command();
        assertEquals(0, run.exitCode(), where + ": a readable COW always dumps: " + run.err());
        if (run.command().endsWith("--json")) {
            JsonNode tree = json.readTree(run.out());
            assertTrue(tree.has("sizeBytes") && tree.has("problems"), where + ": " + run.out());
        } else {
            assertTrue(run.out().startsWith("cow cow.img: "), where + ": " + run.out());
        }
    }

    private void readOutput(Run read, Run checked, byte[] cowBytes, byte[] originBytes, Path view, String what)
            throws IOException {
        String where = what + ": " + read.command();
        ByteBuffer header = ByteBuffer.wrap(Arrays.copyOf(cowBytes, 16)).order(ByteOrder.LITTLE_ENDIAN);
        boolean validSnapshot = cowBytes.length >= 16 && header.getInt(0) == 0x70416e53 && header.getInt(4) != 0;
        boolean readable = checked.exitCode() == 0 && validSnapshot;
        assertEquals(
                readable,
                read.exitCode() == 0,
                where + ": read " + (read.exitCode() == 0 ? "succeeded" : "failed") + " but check said " + checked.out()
                        + checked.err() + read.err());
        if (read.exitCode() != 0) {
            assertFalse(Files.exists(view), where + ": left an output file behind");
            return;
        }
        Matcher sha = VIEW_SHA.matcher(read.out());
        assertTrue(sha.find(), where + ": " + read.out());
        byte[] written = Files.readAllBytes(view);
        assertEquals(sha256(written), sha.group(1), where + ": the printed sha256");
        byte[] expected = snapshotView(cowBytes, originBytes);
        assertEquals(expected.length, written.length, where + ": the view's size");
        assertEquals(
                -1,
                Arrays.mismatch(expected, written),
                where + ": the view differs at byte " + Arrays.mismatch(expected, written));
    }

    /** The snapshot view rebuilt from the raw COW: each chunk from the COW when the list remaps it. */
    private static byte[] snapshotView(byte[] cow, byte[] origin) {
        ByteBuffer b = ByteBuffer.wrap(cow).order(ByteOrder.LITTLE_ENDIAN);
        int chunkBytes = b.getInt(12) * 512;
        long epa = chunkBytes / 16;
        Map<Long, Long> remaps = new HashMap<>();
        for (long area = 0; ; area++) {
            long at = (1 + area * (epa + 1)) * chunkBytes;
            long i = 0;
            for (; i < epa && b.getLong((int) (at + i * 16 + 8)) != 0; i++) {
                remaps.put(b.getLong((int) (at + i * 16)), b.getLong((int) (at + i * 16 + 8)));
            }
            if (i < epa) {
                break;
            }
        }
        byte[] view = origin.clone();
        remaps.forEach((old, neu) -> {
            int at = (int) (old * chunkBytes);
            System.arraycopy(cow, (int) (neu * chunkBytes), view, at, Math.min(chunkBytes, origin.length - at));
        });
        return view;
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
