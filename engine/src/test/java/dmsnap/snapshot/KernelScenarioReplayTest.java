package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.KernelFixtures;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Replays what the real kernel did (result.txt of shared/fixtures/kernel-cow, copied into the
 * store's test resources) against the engine, line by line: every dmsetup command and its exit
 * status and output, every write (and whether it failed), every STATUS/TABLE line and every
 * SHA256 of a view; then every final image byte for byte. Device numbers are normalised: the
 * kernel's 254:N of a drive is our drive file's path.
 *
 * <p>Each scenario runs in {@code directsync}, the mode whose acknowledgement rule the kernel's
 * transcript records, and in {@code none}, the daemon's default: the scenario's writes are
 * {@code dd oflag=direct conv=fsync}, replayed as a write and a FLUSH, and a FLUSH commits what {@code none}
 * deferred, so every status line, view, mid-scenario image and final image must be the kernel's
 * in both. ({@code writeback} differs from {@code none} only in the page cache, which a replay on
 * files cannot tell apart.) In {@code none} the COWs are sparse files, as {@code truncate} makes
 * them, so their stores allocate ahead of their next free chunks: that must change no byte either.
 */
class KernelScenarioReplayTest {
    private static final Pattern WRITE = Pattern.compile("WRITE (\\S+) sector=(\\d+) nsect=(\\d+) pat=(\\d+)");
    private static final Pattern VIEW = Pattern.compile("(STATUS|TABLE) (\\S+): (.*)");
    private static final Pattern SHA = Pattern.compile("SHA256 (\\S+): (.*)");

    @TempDir
    Path dir;

    private final Map<String, Path> drives = new LinkedHashMap<>(); // vda -> file
    private final Map<String, String> numbers = new LinkedHashMap<>(); // vda -> 254:0
    private DeviceManager dm;
    private Arena arena;
    private MemorySegment pattern;

    private static byte[] records(String prefix, long sectors) {
        byte[] bytes = new byte[(int) (sectors * 512)];
        for (int s = 0; s < sectors; s++) {
            byte[] record = String.format("%s%012d\n", prefix, s).getBytes(StandardCharsets.US_ASCII);
            for (int r = 0; r < 32; r++) {
                System.arraycopy(record, 0, bytes, s * 512 + r * 16, 16);
            }
        }
        return bytes;
    }

    /** The drives; those without a pattern (COWs) {@code sparse} as {@code truncate} makes them, else written with zeroes. */
    private void setUpDrives(String scenario, boolean sparse) throws IOException {
        for (String line : KernelFixtures.text(scenario, "drives.txt").split("\n")) {
            if (line.startsWith("#") || line.isBlank()) {
                continue;
            }
            String[] f = line.trim().split("\\s+");
            long bytes = Long.parseLong(f[3].replaceAll("[KM]$", "")) << (f[3].endsWith("M") ? 20 : 10);
            Path file = dir.resolve(f[1]);
            if (f[2].equals("ORG")) {
                Files.write(file, records("ORG", bytes / 512));
            } else if (sparse) {
                try (java.io.RandomAccessFile truncated = new java.io.RandomAccessFile(file.toFile(), "rw")) {
                    truncated.setLength(bytes);
                }
            } else {
                Files.write(file, new byte[(int) bytes]);
            }
            drives.put(f[0], file);
            numbers.put(f[0], f[4]);
        }
    }

    private String toOurs(String text) {
        for (Map.Entry<String, Path> d : drives.entrySet()) {
            text = text.replace("/dev/" + d.getKey(), d.getValue().toString());
        }
        return text;
    }

    private String toKernels(String text) throws IOException {
        for (Map.Entry<String, Path> d : drives.entrySet()) {
            text = text.replace(d.getValue().toRealPath().toString(), numbers.get(d.getKey()));
        }
        return text;
    }

    private String statusLine(String name, StatusType type, boolean inactive) throws Exception {
        MappedDevice d = dm.find(name);
        if (d == null) {
            return "Device does not exist.";
        }
        return toKernels(String.join("\n", d.statusLines(type, inactive)));
    }

    /** sha256 of a whole device read through the engine, or "ERROR" when a read fails. */
    private String sha(String device) throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        if (device.startsWith("/dev/mapper/")) {
            MappedDevice d = dm.get(device.substring("/dev/mapper/".length()));
            MemorySegment buf = arena.allocate(1 << 20, 4096);
            long sectors = d.sizeSectors();
            try {
                for (long s = 0; s < sectors; s += 2048) {
                    MemorySegment piece = buf.asSlice(0, Math.min(2048, sectors - s) << 9);
                    d.submit(IoRequest.read(s, piece));
                    digest.update(piece.asByteBuffer());
                }
            } catch (IOException e) {
                return "ERROR";
            }
            return HexFormat.of().formatHex(digest.digest());
        }
        return HexFormat.of().formatHex(digest.digest(Files.readAllBytes(drives.get(device.substring(5)))));
    }

    /** Runs one dmsetup command; returns rc and output lines as dmsetup prints them. */
    private List<String> dmsetup(List<String> args, int[] rc) throws Exception {
        List<String> out = new ArrayList<>();
        rc[0] = 0;
        String verb = args.getFirst();
        try {
            switch (verb) {
                case "create" -> {
                    int t = args.indexOf("--table");
                    dm.create(
                            args.get(1),
                            null,
                            t < 0
                                    ? null
                                    : TableParser.parse(toOurs(String.join(" ", args.subList(t + 1, args.size())))));
                }
                case "load" ->
                    dm.load(
                            args.get(1),
                            TableParser.parse(
                                    toOurs(String.join(" ", args.subList(args.indexOf("--table") + 1, args.size())))));
                case "suspend" -> dm.get(args.get(1)).suspend();
                case "resume" -> dm.get(args.get(1)).resume();
                case "remove" -> dm.remove(args.get(1), false);
                case "ls" -> {
                    List<MappedDevice> all = dm.list();
                    if (all.isEmpty()) {
                        out.add("No devices found");
                    }
                    for (MappedDevice d : all) {
                        out.add(d.name() + "\t(" + DeviceManager.DM_MAJOR + ":" + d.minor() + ")");
                    }
                }
                case "info" ->
                    out.addAll(List.of(dm.get(args.get(1)).info().dmsetupText().split("\n")));
                case "status", "table" -> {
                    boolean inactive = args.contains("--inactive");
                    out.add(statusLine(
                            args.getLast(), verb.equals("status") ? StatusType.INFO : StatusType.TABLE, inactive));
                }
                default -> fail("unknown dmsetup verb in fixture: " + args);
            }
        } catch (TableLoadException e) {
            rc[0] = 1;
            out.add(e.errno().text());
            out.add(e.getMessage());
        } catch (DmException e) {
            rc[0] = 1;
            out.add(e.errno().text());
            out.add(e.getMessage());
        }
        return out;
    }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> scenariosInBothModes() {
        return java.util.stream.Stream.of("basic", "transient", "overflow", "handover")
                .flatMap(s -> java.util.stream.Stream.of(CacheMode.DIRECTSYNC, CacheMode.NONE)
                        .map(m -> org.junit.jupiter.params.provider.Arguments.of(s, m)));
    }

    @ParameterizedTest
    @MethodSource("scenariosInBothModes")
    void replaysTheKernelsTranscript(String scenario, CacheMode mode) throws Exception {
        // The default mode on COWs made the default way (truncate), whose blocks are allocated
        // ahead of their stores; the kernel's rule on thick ones: the bytes are the kernel's in both.
        setUpDrives(scenario, mode == CacheMode.NONE);
        Map<String, String> shaDevice = new LinkedHashMap<>();
        Matcher shaLines =
                Pattern.compile("(?m)^\\s*sha (\\S+) (\\S+)").matcher(KernelFixtures.text(scenario, "scenario.sh"));
        while (shaLines.find()) {
            shaDevice.put(shaLines.group(1), shaLines.group(2));
        }
        byte[] pat = records("PAT", 4096);
        arena = Arena.ofShared();
        pattern = arena.allocate(pat.length, 4096);
        pattern.copyFrom(MemorySegment.ofArray(pat));
        Registry registry = new Registry();
        int checked = 0;
        try (ChunkCopier copier = new ChunkCopier(4, 1 << 20)) {
            dm = new DeviceManager(
                    SnapshotTargets.register(TargetTypes.withBasicTargets(), registry, copier),
                    new BackingDevices(),
                    mode);
            String[] lines = KernelFixtures.text(scenario, "result.txt").split("\n");
            for (int i = 0; i < lines.length; i++) {
                String line = lines[i];
                Matcher m;
                if (line.startsWith("$ dmsetup ")) {
                    List<String> expected = new ArrayList<>();
                    int expectedRc = -1;
                    while (++i < lines.length && lines[i].startsWith("  ")) {
                        String o = lines[i].substring(2);
                        if (o.startsWith("[rc=")) {
                            expectedRc = Integer.parseInt(o.substring(4, o.length() - 1));
                            break;
                        }
                        expected.add(o);
                    }
                    int[] rc = {0};
                    List<String> actual = dmsetup(
                            List.of(line.substring("$ dmsetup ".length()).split(" ")), rc);
                    assertEquals(expectedRc, rc[0], line + ": " + actual);
                    if (expectedRc == 0) {
                        assertEquals(expected, actual, line);
                    } else {
                        // dmsetup: "device-mapper: <verb> ioctl on <name> ... failed: <strerror>"
                        assertTrue(
                                expected.getFirst().endsWith("failed: " + actual.getFirst()),
                                line + ": kernel said " + expected + ", we " + actual);
                        // The kernel's reason, when it logged one, is ours word for word.
                        List<String> kmsg = new ArrayList<>();
                        for (int k = i + 1; k < lines.length && lines[k].startsWith("KMSG: "); k++) {
                            kmsg.add(lines[k]);
                        }
                        List<String> reasons = kmsg.stream()
                                .filter(k -> k.contains("snapshot"))
                                .toList();
                        if (!reasons.isEmpty()) {
                            assertTrue(
                                    reasons.stream().anyMatch(k -> k.contains(actual.get(1))),
                                    line + ": kernel logged " + reasons + ", we said " + actual.get(1));
                        }
                    }
                    checked++;
                } else if ((m = WRITE.matcher(line)).matches()) {
                    boolean expectError = i + 1 < lines.length && lines[i + 1].startsWith("  dd: ");
                    MemorySegment data =
                            pattern.asSlice(Long.parseLong(m.group(4)) << 9, Long.parseLong(m.group(3)) << 9);
                    boolean failed = false;
                    try {
                        dm.get(m.group(1)).submit(IoRequest.write(Long.parseLong(m.group(2)), data, false));
                        dm.get(m.group(1)).submit(IoRequest.flush());
                    } catch (IOException e) {
                        failed = true;
                    }
                    assertEquals(expectError, failed, line);
                    checked++;
                } else if ((m = VIEW.matcher(line)).matches()) {
                    StatusType type = m.group(1).equals("STATUS") ? StatusType.INFO : StatusType.TABLE;
                    assertEquals(m.group(3), statusLine(m.group(2), type, false), line);
                    checked++;
                } else if ((m = SHA.matcher(line)).matches()) {
                    String expected = m.group(2).startsWith("ERROR") ? "ERROR" : m.group(2);
                    assertEquals(expected, sha(shaDevice.get(m.group(1))), line);
                    checked++;
                }
            }
        } finally {
            arena.close();
        }
        Map<String, String> sums = KernelFixtures.sha256sums(scenario);
        for (Path file : drives.values()) {
            String expected = sums.get(file.getFileName().toString());
            assertEquals(
                    expected,
                    HexFormat.of()
                            .formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file))),
                    "final image " + file.getFileName());
            checked++;
        }
        System.out.println("kernel scenario " + scenario + " (" + mode + "): " + checked
                + " commands, writes, views and images match");
        assertTrue(checked > 10);
    }
}
