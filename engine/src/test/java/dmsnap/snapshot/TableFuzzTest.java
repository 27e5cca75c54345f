package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import dmsnap.table.Table;
import dmsnap.table.TableLine;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Random and mutated tables through {@link TableParser#parse} and {@link DeviceManager#create}
 * (load and resume, as the daemon's create does), over every target type with real files: valid
 * tables of linear, zero, error, snapshot-origin, snapshot (P, PO, N, features) and
 * snapshot-merge lines, then mutated: interesting numbers (max long, 2^64, negative, leading
 * zeros, hex, Unicode digits), other and odd paths ({@code ..}, a symlink, a directory, a file
 * too small or of an odd size, a mapped device, missing), control and Unicode characters, long
 * words and lines, lines duplicated, dropped, swapped, shifted, lengths changed, types and store
 * letters changed, arguments dropped or added, random text. Seeded ({@code -Ddmsnap.tests.seed}),
 * bounded in count ({@code dmsnap.tests.tableFuzzCases}) and time ({@code dmsnap.tests.tableFuzzMillis}),
 * both scaled by {@code dmsnap.tests.fuzzScale}.
 *
 * <p>Per case: parsing gives a table that prints and parses back to itself, or a
 * {@link TableLoadException} of one line; creating gives a device whose size is the table's, whose
 * linear lines lie inside their devices, and whose {@code table} output parses to the same lines
 * and, loaded into a new device, prints the same again; or a {@link TableLoadException} or
 * {@link DmException} of one line, after which nothing is left behind: no device but the guard, no
 * backing device open, no snapshot registered, the guard device not held. Nothing else escapes.
 *
 * <p>Device words include special files (a FIFO, a socket, {@code /dev/zero}, {@code /dev/null}:
 * refused before any blocking open), NUL and unpaired surrogates (no such path), and the device
 * being loaded ({@code dm:fz} in a table of {@code fz}: refused as the kernel's dm_get_device does).
 */
@ExtendWith(Seeds.class)
class TableFuzzTest {
    static final FuzzBudget BUDGET = FuzzBudget.of("tableFuzz", 4000, 10_000);
    static final long BASE_SECTORS = 2048;

    @TempDir
    Path dir;

    private Registry registry;
    private ChunkCopier copier;
    private BackingDevices backing;
    private DeviceManager dm;
    private MappedDevice guard;
    private Path base;
    private List<String> paths;
    private volatile String current = "before the first case";
    private final TreeMap<String, Integer> outcomes = new TreeMap<>();

    @BeforeEach
    void setUp() throws Exception {
        registry = new Registry();
        copier = new ChunkCopier(2, 1 << 20);
        backing = new BackingDevices();
        dm = new DeviceManager(SnapshotTargets.register(TargetTypes.withBasicTargets(), registry, copier), backing);
        guard = dm.create("guard", null, TableParser.parse("0 4096 zero"));
        base = sized("base.img", BASE_SECTORS * 512);
        sized("base2.img", 1000 * 512);
        sized("cowA.img", 1 << 20);
        sized("cowB.img", 256 << 10);
        sized("small.img", 4096);
        sized("odd.img", 1000);
        sized("empty.img", 0);
        Files.createSymbolicLink(dir.resolve("link.img"), base);
        Files.createDirectories(dir.resolve("sub"));
        mkfifo(dir.resolve("fifo"));
        paths = List.of(
                dir + "/fifo",
                "/dev/zero",
                "/dev/null",
                "dm:fz",
                base.toString(),
                dir + "/base2.img",
                dir + "/cowA.img",
                dir + "/cowB.img",
                dir + "/small.img",
                dir + "/odd.img",
                dir + "/empty.img",
                dir + "/link.img",
                dir + "/sub/../base.img",
                dir + "/./cowA.img",
                dir + "//cowB.img",
                dir + "/sub",
                dir + "/missing.img",
                "dm:guard",
                "dm:missing",
                "relative-missing.img",
                dir + "/sub/../../" + dir.getFileName() + "/cowA.img");
    }

    private static void mkfifo(Path p) throws IOException, InterruptedException {
        Process mk = new ProcessBuilder("mkfifo", p.toString()).inheritIO().start();
        if (mk.waitFor() != 0) {
            throw new IOException("mkfifo " + p + " failed");
        }
    }

    /** A zero-filled file of {@code bytes} (whatever it held before). */
    private Path sized(String name, long bytes) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(0);
            f.setLength(bytes);
        }
        return p;
    }

    @AfterEach
    void tearDown() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    @Test
    void mutatedTablesLoadConsistentlyOrAreRefusedInOneLine() {
        assertTimeoutPreemptively(BUDGET.hangGuard(), this::run, () -> "hung in " + current);
    }

    private void run() throws Exception {
        Random master = Seeds.random("table-fuzz");
        FuzzBudget.Clock clock = BUDGET.start();
        int cases = 0;
        for (; clock.more(cases); cases++) {
            long caseSeed = master.nextLong();
            Random r = new Random(caseSeed);
            if (r.nextInt(8) == 0) {
                // New COWs now and then (a P load formats them; later loads read what it wrote).
                sized("cowA.img", 1 << 20);
                sized("cowB.img", 256 << 10);
            }
            List<String> done = new ArrayList<>();
            String text = r.nextInt(20) == 0 ? randomText(r, done) : mutate(validTable(r), r, done);
            String what =
                    "case " + cases + " (case seed " + caseSeed + ", " + String.join(", ", done) + "): " + shown(text);
            current = what;
            runCase(text, r.nextInt(3) == 0, what);
        }
        System.out.printf(
                "Table fuzz: seed %d: %d cases in %d ms; %s; reproduce with -Ddmsnap.tests.seed=%d%n",
                Seeds.seed(), cases, clock.elapsedMillis(), outcomes, Seeds.seed());
        Figures.record(
                "fuzz.table.cases",
                cases + " random and mutated tables: " + new java.util.TreeMap<>(outcomes)
                        + ", nothing left behind after a refusal");
        if (cases >= 400) { // some outcomes are rarer than one in ten cases
            for (String outcome :
                    new String[] {"created", "create refused", "loaded and resumed", "load refused", "parse refused"}) {
                assertTrue(outcomes.getOrDefault(outcome, 0) > 0, outcome + " should occur: " + outcomes);
            }
        }
    }

    /**
     * 100 000 targets, as zero lines and as linear lines on one file: they load (the kernel takes
     * up to DM_MAX_TARGETS = 1 048 576 since Linux 6.8 and its stable backports), I/O reaches the
     * last line, the file is open once, and the table prints and loads back. Time and heap are
     * printed, not asserted.
     */
    @Test
    void aHundredThousandTargetsLoadAndPrintBack() {
        assertTimeoutPreemptively(Duration.ofMinutes(5), () -> {
            for (String type : new String[] {"zero", "linear"}) {
                hundredThousand(type);
            }
        });
    }

    private void hundredThousand(String type) throws Exception {
        int targets = 100_000;
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < targets; i++) {
            text.append(i)
                    .append(" 1 ")
                    .append(type.equals("zero") ? "zero" : "linear " + base + " " + i % BASE_SECTORS)
                    .append('\n');
        }
        long start = System.nanoTime();
        Table table = TableParser.parse(text.toString());
        MappedDevice device = dm.create("big", null, table);
        long loadedMillis = (System.nanoTime() - start) / 1_000_000;
        assertEquals(targets, device.sizeSectors());
        assertEquals(type.equals("zero") ? 0 : 1, backing.openCount(), "one open of the file for every line");
        long last = targets - 1;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment sector = arena.allocate(512, 4096).fill((byte) 0x5a);
            device.submit(IoRequest.write(last, sector, true));
            device.submit(IoRequest.read(last, sector.fill((byte) 0)));
            assertEquals(type.equals("zero") ? 0 : 0x5a, sector.get(ValueLayout.JAVA_BYTE, 511));
        }
        if (type.equals("linear")) {
            assertEquals(0x5a, Files.readAllBytes(base)[(int) (last % BASE_SECTORS * 512)], "the last line's sector");
        }
        List<String> printed = device.statusLines(StatusType.TABLE, false);
        assertEquals(targets, printed.size());
        remove("big", type);
        start = System.nanoTime();
        MappedDevice again = dm.create("big", null, TableParser.parse(String.join("\n", printed)));
        assertEquals(printed, again.statusLines(StatusType.TABLE, false));
        long reloadedMillis = (System.nanoTime() - start) / 1_000_000;
        Runtime rt = Runtime.getRuntime();
        System.out.printf(
                "Table fuzz: %d %s targets loaded in %d ms, reloaded from the table output in %d ms;"
                        + " heap %d MiB used%n",
                targets, type, loadedMillis, reloadedMillis, (rt.totalMemory() - rt.freeMemory()) >> 20);
        remove("big", type);
        assertNothingLeft(type + " x " + targets);
        Figures.record(
                "fuzz.table.large." + type,
                targets + " " + type + " targets loaded in " + loadedMillis
                        + " ms and reloaded from their table output");
    }

    private void count(String outcome) {
        outcomes.merge(outcome, 1, Integer::sum);
    }

    /** The table text for a failure message: escaped, and cut when long. */
    static String shown(String text) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < text.length() && b.length() < 600; i++) {
            char c = text.charAt(i);
            if (c == '\n') {
                b.append("\\n");
            } else if (c < 0x20 || c == 0x7f || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return "\"" + b + (b.length() >= 600 ? "...\" (" + text.length() + " chars)" : "\"");
    }

    static void assertOneLine(Exception e, String what) {
        String message = e.getMessage();
        if (message == null || message.isBlank() || message.contains("\n") || message.contains("\r")) {
            throw new AssertionError(what + ": not a one-line message: " + message, e);
        }
    }

    // ---- one case ------------------------------------------------------------------------------

    private void runCase(String text, boolean reload, String what) throws Exception {
        Table table;
        try {
            table = TableParser.parse(text);
        } catch (TableLoadException e) {
            assertOneLine(e, what + ": parse");
            count("parse refused");
            return;
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": parse: " + e.getClass().getName() + " escaped", e);
        }
        assertEquals(table, TableParser.parse(table.toString()), what + ": the parsed table prints and parses back");
        MappedDevice device = reload ? reload(table, what) : create(table, what);
        if (device == null) {
            return;
        }
        List<String> printed = device.statusLines(StatusType.TABLE, false);
        checkLoaded(device, table, printed, what);
        remove("fz", what);
        assertNothingLeft(what + ": after removing it");
        // The table output loads again (into a device of another name) and prints the same.
        Table again = TableParser.parse(String.join("\n", printed));
        MappedDevice reloaded;
        try {
            reloaded = dm.create("fz2", null, again);
        } catch (TableLoadException | DmException e) {
            throw new AssertionError(
                    what + ": the table output " + printed + " does not load again: " + e.getMessage(), e);
        }
        assertEquals(printed, reloaded.statusLines(StatusType.TABLE, false), what + ": the table output loaded again");
        remove("fz2", what);
        assertNothingLeft(what + ": after removing the reloaded device");
    }

    /** dmsetup create: load and resume, or nothing left behind. Null when refused. */
    private MappedDevice create(Table table, String what) {
        try {
            MappedDevice device = dm.create("fz", null, table);
            count("created");
            return device;
        } catch (TableLoadException | DmException e) {
            assertOneLine(e, what + ": create");
            count("create refused");
            assertNothingLeft(what + ": after the refused create (" + e.getMessage() + ")");
            return null;
        } catch (InterruptedException e) {
            throw new AssertionError(what + ": interrupted", e);
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": create: " + e.getClass().getName() + " escaped", e);
        }
    }

    /**
     * dmsetup load into a device with a live table, then resume. A refused load changes nothing:
     * the old table stays live, alone; a refused resume leaves the new table live and the device
     * suspended (spec 10.5), and a forced remove then leaves nothing. Null when refused.
     */
    private MappedDevice reload(Table table, String what) throws Exception {
        MappedDevice device = dm.create("fz", null, TableParser.parse("0 8 zero"));
        try {
            dm.load("fz", table);
        } catch (TableLoadException | DmException e) {
            assertOneLine(e, what + ": load");
            count("load refused");
            assertEquals(List.of("0 8 zero "), device.statusLines(StatusType.TABLE, false), what + ": the live table");
            assertEquals("LIVE", device.info().tablesPresent(), what + ": after the refused load");
            assertEquals(0, backing.openCount(), what + ": after the refused load: backing devices open");
            assertEquals(List.of(), registry.allSnapshots(), what + ": after the refused load: snapshots registered");
            remove("fz", what);
            assertNothingLeft(what + ": after the refused load (" + e.getMessage() + ")");
            return null;
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": load: " + e.getClass().getName() + " escaped", e);
        }
        try {
            device.resume();
        } catch (DmException e) {
            assertOneLine(e, what + ": resume");
            count("resume refused");
            assertTrue(device.isSuspended(), what + ": a refused resume leaves the device suspended");
            dm.remove("fz", true);
            assertNothingLeft(what + ": after the refused resume (" + e.getMessage() + ")");
            return null;
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": resume: " + e.getClass().getName() + " escaped", e);
        }
        count("loaded and resumed");
        return device;
    }

    private void remove(String name, String what) {
        try {
            dm.remove(name, false);
        } catch (DmException e) {
            throw new AssertionError(what + ": cannot remove " + name + ": " + e.getMessage(), e);
        }
    }

    private void checkLoaded(MappedDevice device, Table table, List<String> printed, String what) throws Exception {
        assertEquals(table.lengthSectors(), device.sizeSectors(), what + ": the device's size");
        // The kernel refuses a table past LLONG_MAX >> 9 sectors ("too large device"): its size in bytes would
        // overflow.
        assertTrue(
                device.sizeSectors() <= Long.MAX_VALUE >> 9,
                what + ": a device of " + device.sizeSectors() + " sectors (" + device.sizeSectors() * 512
                        + " bytes as a long)");
        Table parsed = TableParser.parse(String.join("\n", printed));
        assertEquals(table.lines().size(), parsed.lines().size(), what + ": table output " + printed);
        // One open per device, however it was named (a symlink, "..", "//"): the table prints each by one name.
        Set<String> devices = new HashSet<>();
        for (TableLine line : parsed.lines()) {
            int count = switch (line.targetType()) {
                case "linear", "snapshot-origin" -> 1;
                case "snapshot", "snapshot-merge" -> 2;
                default -> 0;
            };
            devices.addAll(line.args().subList(0, count));
        }
        assertEquals(devices.size(), backing.openCount(), what + ": devices open for " + devices);
        for (int i = 0; i < table.lines().size(); i++) {
            TableLine in = table.lines().get(i);
            TableLine out = parsed.lines().get(i);
            assertEquals(
                    List.of(in.startSector(), in.lengthSectors(), in.targetType()),
                    List.of(out.startSector(), out.lengthSectors(), out.targetType()),
                    what + ": line " + i + " printed as " + printed.get(i));
            if (out.targetType().equals("linear")) {
                long offset = Long.parseLong(out.args().get(1));
                long deviceSectors = out.args().getFirst().startsWith("dm:")
                        ? dm.get(out.args().getFirst().substring(3)).sizeSectors()
                        : Files.size(Path.of(out.args().getFirst())) / 512;
                assertTrue(
                        offset >= 0 && offset < deviceSectors && out.lengthSectors() <= deviceSectors - offset,
                        what + ": linear line " + i + " (" + printed.get(i) + ") reaches past its device of "
                                + deviceSectors + " sectors");
            }
        }
    }

    private void assertNothingLeft(String what) {
        assertEquals(
                List.of("guard"), dm.list().stream().map(MappedDevice::name).toList(), what + ": devices");
        assertEquals(0, backing.openCount(), what + ": backing devices still open");
        assertEquals(List.of(), registry.allSnapshots(), what + ": snapshots still registered");
        assertEquals(0, guard.info().openCount(), what + ": the guard device is still held");
    }

    // ---- valid tables --------------------------------------------------------------------------

    private String validTable(Random r) {
        int lines = r.nextInt(4) == 0 ? 2 + r.nextInt(4) : 1;
        StringBuilder b = new StringBuilder();
        long start = 0;
        for (int i = 0; i < lines; i++) {
            long length = 1 + r.nextInt((int) BASE_SECTORS);
            b.append(start)
                    .append(' ')
                    .append(length)
                    .append(' ')
                    .append(validLine(r, length))
                    .append('\n');
            start += length;
        }
        return b.toString();
    }

    private String validLine(Random r, long length) {
        return switch (r.nextInt(7)) {
            case 0 ->
                "linear " + (r.nextBoolean() ? base : dir + "/link.img") + " "
                        + r.nextInt((int) (BASE_SECTORS - length + 1));
            case 1 -> "zero";
            case 2 -> "error" + (r.nextBoolean() ? "" : " ignored args");
            case 3 -> "snapshot-origin " + base;
            case 4, 5 -> {
                Path cow = cow(r);
                yield "snapshot " + base + " " + cow + " " + pick(r, "P", "PO", "N", "p", "Po", "n") + " "
                        + chunk(cow, r) + features(r);
            }
            default -> {
                Path cow = cow(r);
                yield "snapshot-merge " + base + " " + cow + " P " + chunk(cow, r);
            }
        };
    }

    private Path cow(Random r) {
        return dir.resolve(r.nextBoolean() ? "cowA.img" : "cowB.img");
    }

    /**
     * Mostly the chunk size the COW's header holds (or 0), else any: a differing one is overridden
     * by the header with a warning, which is worth a case now and then but not in every log line.
     */
    private static long chunk(Path cow, Random r) {
        try (InputStream in = Files.newInputStream(cow)) {
            ByteBuffer header = ByteBuffer.wrap(in.readNBytes(16)).order(ByteOrder.LITTLE_ENDIAN);
            if (header.limit() == 16 && header.getInt(0) == 0x70416e53 && r.nextInt(16) != 0) {
                return r.nextInt(4) == 0 ? 0 : Integer.toUnsignedLong(header.getInt(12));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return 1L << r.nextInt(8);
    }

    private static String features(Random r) {
        return switch (r.nextInt(6)) {
            case 0 -> " 0";
            case 1 -> " 1 discard_zeroes_cow";
            case 2 -> " 2 discard_zeroes_cow discard_passdown_origin";
            default -> "";
        };
    }

    @SafeVarargs
    private static <T> T pick(Random r, T... choices) {
        return choices[r.nextInt(choices.length)];
    }

    // ---- mutations -----------------------------------------------------------------------------

    private static final String[] NUMBERS = {
        "0",
        "1",
        "2",
        "7",
        "8",
        "16",
        "2048",
        "2049",
        "4096",
        "65536",
        "4294967295",
        "4294967296",
        "9007199254740993",
        "18014398509481983",
        "18014398509481984",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "-1",
        "-0",
        "+1",
        "+0",
        "007",
        "0000000000000000000001",
        "0x10",
        "1e3",
        "1.5",
        "\uff18",
        "\u0668",
        "1 2",
        "18446744073709549568"
    };
    /** Near the limits: a long, the kernel's largest device (LLONG_MAX >> 9 sectors), 18 and 19 digits. */
    private static final String[] HUGE = {
        "9223372036854775807",
        "9223372036854775806",
        "9223372036854775808",
        "18014398509481983",
        "18014398509481984",
        "999999999999999999",
        "9223372036854774000",
        "4611686018427387904"
    };

    private static final String[] TYPES = {
        "linear",
        "zero",
        "error",
        "snapshot",
        "snapshot-origin",
        "snapshot-merge",
        "Linear",
        "ZERO",
        "striped",
        "",
        "snapshot-origin\u0000",
        "lin ear"
    };
    private static final String[] STORES = {
        "P", "PO", "N", "p", "po", "POx", "Px", "NO", "Nfoo", "x", "O", "PP", "\u00de"
    };
    private static final String[] CHARS = {
        "\u0000",
        "\u0001",
        "\u001b",
        "\t",
        "\r",
        "\u000b",
        "\f",
        "\u00a0",
        "\u2028",
        "\u0085",
        "#",
        "\u00e9",
        "\ud83d\ude00",
        "\ufeff",
        " ",
        "\n",
        "\\",
        "\"",
        "'",
        "$",
        "%n",
        "\ud800"
    };

    private String mutate(String table, Random r, List<String> done) {
        String text = table;
        int count = r.nextInt(5) == 0 ? 0 : 1 + r.nextInt(3);
        for (int i = 0; i < count; i++) {
            text = mutateOnce(text, r, done);
        }
        if (count == 0) {
            done.add("unmutated");
        }
        return text;
    }

    private String mutateOnce(String text, Random r, List<String> done) {
        List<String> lines = new ArrayList<>(Arrays.asList(text.split("\n", -1)));
        if (lines.getLast().isEmpty()) {
            lines.removeLast();
        }
        if (lines.isEmpty()) {
            lines.add("");
        }
        int li = r.nextInt(lines.size());
        List<String> words = new ArrayList<>(Arrays.asList(lines.get(li).split(" ", -1)));
        int wi = r.nextInt(words.size());
        switch (r.nextInt(14)) {
            case 0, 1 -> { // a number word (start, length, offset, chunk size, feature count) made interesting
                int at = numberWord(words, r);
                String n = r.nextBoolean() ? pick(r, NUMBERS) : pick(r, HUGE);
                words.set(at, n);
                done.add("word " + at + " of line " + li + " = " + shown(n));
            }
            case 2, 3 -> { // a path
                String p = pick(r, paths.toArray(String[]::new));
                int at = pathWord(words, r);
                words.set(at, p);
                done.add("word " + at + " of line " + li + " = " + p);
            }
            case 4 -> { // the type
                if (words.size() > 2) {
                    String t = pick(r, TYPES);
                    words.set(2, t);
                    done.add("type of line " + li + " = " + shown(t));
                }
            }
            case 5 -> { // the store letters
                if (words.size() > 5) {
                    String s = pick(r, STORES);
                    words.set(5, s);
                    done.add("store of line " + li + " = " + shown(s));
                }
            }
            case 6 -> { // a character put in
                String c = pick(r, CHARS);
                String line = lines.get(li);
                int at = r.nextInt(line.length() + 1);
                lines.set(li, line.substring(0, at) + c + line.substring(at));
                done.add(shown(c) + " at " + at + " of line " + li);
                return String.join("\n", lines) + "\n";
            }
            case 7 -> { // a word dropped or added
                if (r.nextBoolean() && words.size() > 1) {
                    words.remove(wi);
                    done.add("word " + wi + " of line " + li + " dropped");
                } else {
                    String w = r.nextBoolean() ? pick(r, NUMBERS) : pick(r, paths.toArray(String[]::new));
                    words.add(r.nextInt(words.size() + 1), w);
                    done.add("word " + shown(w) + " added to line " + li);
                }
            }
            case 8 -> { // a long word or a long line
                int n = r.nextBoolean() ? 4096 + r.nextInt(200_000) : 1 + r.nextInt(300);
                if (r.nextBoolean()) {
                    words.set(wi, "9".repeat(Math.min(n, 5000)) + (r.nextBoolean() ? "" : "x".repeat(n)));
                    done.add("word " + wi + " of line " + li + " made "
                            + words.get(wi).length() + " chars");
                } else {
                    for (int i = 0; i < n; i++) {
                        words.add(r.nextBoolean() ? "1" : "discard_zeroes_cow");
                    }
                    done.add(n + " words added to line " + li);
                }
            }
            case 9 -> { // a line duplicated, dropped or swapped
                switch (r.nextInt(3)) {
                    case 0 -> lines.add(li, lines.get(li));
                    case 1 -> lines.remove(li);
                    default -> {
                        int other = r.nextInt(lines.size());
                        String t = lines.get(li);
                        lines.set(li, lines.get(other));
                        lines.set(other, t);
                    }
                }
                done.add("lines rearranged at " + li);
                return String.join("\n", lines) + "\n";
            }
            case 10 -> { // start or length shifted by a little: overlaps and gaps
                int at = r.nextBoolean() ? 0 : Math.min(1, words.size() - 1);
                try {
                    long v = Long.parseLong(words.get(at)) + (r.nextBoolean() ? 1 : -1) * (1 + r.nextInt(3));
                    words.set(at, Long.toString(v));
                    done.add("word " + at + " of line " + li + " shifted to " + v);
                } catch (NumberFormatException e) {
                    done.add("(not a number to shift)");
                }
            }
            case 11 -> { // whitespace: tabs, many spaces, leading and trailing
                String sep = pick(r, "\t", "   ", " \t ", "\u000b", "\f");
                lines.set(li, (r.nextBoolean() ? sep : "") + String.join(sep, words) + (r.nextBoolean() ? sep : ""));
                done.add("separators " + shown(sep) + " in line " + li);
                return String.join("\n", lines) + "\n";
            }
            case 12 -> { // many lines: the same line repeated with its start advanced
                int n = 1 + r.nextInt(2000);
                long start = 0;
                List<String> many = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    many.add(start + " 1 " + (r.nextBoolean() ? "zero" : "linear " + base + " " + r.nextInt(2048)));
                    start++;
                }
                done.add(n + " one-sector lines");
                return String.join("\n", many) + "\n";
            }
            default -> { // a blank line, a comment, or a line without its newline
                switch (r.nextInt(3)) {
                    case 0 -> lines.add(li, "");
                    case 1 -> lines.add(li, "# " + lines.get(li));
                    default -> {
                        done.add("no newline at the end");
                        return String.join("\n", lines);
                    }
                }
                done.add("blank or comment line at " + li);
                return String.join("\n", lines) + "\n";
            }
        }
        lines.set(li, String.join(" ", words));
        return String.join("\n", lines) + "\n";
    }

    /** A word that holds a number in a valid line (start, length, or a numeric argument), else any. */
    private static int numberWord(List<String> words, Random r) {
        List<Integer> numeric = new ArrayList<>();
        for (int i = 0; i < words.size(); i++) {
            if (!words.get(i).isEmpty() && words.get(i).chars().allMatch(Character::isDigit)) {
                numeric.add(i);
            }
        }
        return numeric.isEmpty() ? r.nextInt(words.size()) : numeric.get(r.nextInt(numeric.size()));
    }

    /** A word that holds a path in a valid line, else any argument. */
    private static int pathWord(List<String> words, Random r) {
        List<Integer> at = new ArrayList<>();
        for (int i = 3; i < words.size(); i++) {
            if (words.get(i).startsWith("/")) {
                at.add(i);
            }
        }
        return at.isEmpty() ? Math.min(words.size() - 1, 3) : at.get(r.nextInt(at.size()));
    }

    private static final Pattern WORD = Pattern.compile("\\S+");

    private static String randomText(Random r, List<String> done) {
        String alphabet = "0123456789 \t\nabcdefghijklmnopqrstuvwxyz-/:.#PON";
        int n = r.nextInt(200);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append(alphabet.charAt(r.nextInt(alphabet.length())));
        }
        done.add("random text");
        return b.toString();
    }
}
