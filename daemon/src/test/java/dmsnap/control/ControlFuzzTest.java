package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import dmsnap.target.TargetTypes;
import java.io.ByteArrayOutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Throws hostile requests at the control socket: random bytes, mutated valid requests of every
 * verb, lines of 1-10 MB, invalid UTF-8, JSON nested 100 000 deep, unknown verbs, device names with
 * '/', NUL, control characters, unpaired surrogates and 10 000 characters, several requests on one
 * line or connection, and clients that hang up mid-request. Seeded ({@code -Ddmsnap.tests.seed}),
 * bounded ({@code dmsnap.tests.controlFuzzCases}/{@code Millis}, scaled by {@code dmsnap.tests.fuzzScale}).
 *
 * <p>Per case: a complete request line gets exactly one answer line, which parses as a response (a
 * failure has an errno and a one-line reason); the server stays up (a good client on another
 * connection gets the guard device's status unchanged); every device that exists has a valid name
 * and answers {@code info}; the guard's backing file is never written. Devices a mutated request
 * legitimately created are removed after the case.
 */
@ExtendWith(Seeds.class)
class ControlFuzzTest {
    static final FuzzBudget BUDGET = FuzzBudget.of("controlFuzz", 3000, 10_000);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] VERBS = {
        "create",
        "load",
        "clear",
        "suspend",
        "resume",
        "remove",
        "rename",
        "status",
        "table",
        "info",
        "ls",
        "version",
        "targets",
        "merge",
        "merge-status"
    };

    @TempDir
    Path dir;

    private ChunkCopier copier;
    private DeviceManager dm;
    private ControlServer server;
    private ControlClient client;
    private Path guardFile;
    private byte[] guardBytes;
    private String guardStatus;
    private List<String> tables;
    private final Map<String, Integer> outcomes = new TreeMap<>();
    private String current = "setup";

    @BeforeEach
    void start() throws Exception {
        copier = new ChunkCopier(2, 1 << 20);
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        guardBytes = new byte[64 << 10];
        new Random(5).nextBytes(guardBytes);
        guardFile = Files.write(dir.resolve("guard.img"), guardBytes);
        Path base = Files.write(dir.resolve("base.img"), new byte[64 << 10]);
        Files.write(dir.resolve("cow.img"), new byte[256 << 10]);
        dm.create("guard", null, TableParser.parse("0 128 linear " + guardFile + " 0"));
        server = new ControlServer(dir.resolve("control.sock"), new ControlHandler(dm, "fuzz"));
        client = new ControlClient(dir.resolve("control.sock"));
        guardStatus = status("guard");
        tables = List.of(
                "0 8 zero",
                "0 128 linear " + base + " 0",
                "0 128 error",
                "0 128 snapshot-origin " + base,
                "0 128 snapshot " + base + " " + dir.resolve("cow.img") + " N 8",
                "0 128 linear " + guardFile + " 0",
                "0 128 linear dm:guard 0");
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    private String status(String name) throws Exception {
        ControlResponse r =
                client.send(new ControlRequest("status", name, null, null, null, false, false, false, false, false));
        return String.join(
                "\n",
                assertInstanceOf(ControlResponse.Success.class, r, current).lines());
    }

    @Test
    void hostileRequestsGetOneAnswerAndLeaveTheDaemonServing() {
        assertTimeoutPreemptively(BUDGET.hangGuard(), this::run, () -> "hung in " + current);
    }

    private void run() throws Exception {
        Random master = Seeds.random("control-fuzz");
        FuzzBudget.Clock clock = BUDGET.start();
        int cases = 0;
        long bytesSent = 0;
        for (; clock.more(cases); cases++) {
            long caseSeed = master.nextLong();
            Random r = new Random(caseSeed);
            List<String> done = new ArrayList<>();
            Request request = request(r, done);
            current = "case " + cases + " (case seed " + caseSeed + ", " + String.join(", ", done) + ")";
            bytesSent += request.bytes().length;
            String answer = send(request.bytes());
            check(request, answer);
            afterCase();
        }
        System.out.printf(
                "Control fuzz: seed %d: %d cases, %d MiB sent, in %d ms; %s; reproduce with"
                        + " -Ddmsnap.tests.seed=%d%n",
                Seeds.seed(), cases, bytesSent >> 20, clock.elapsedMillis(), outcomes, Seeds.seed());
        Figures.record(
                "fuzz.control.cases",
                cases + " hostile control requests (" + (bytesSent >> 20) + " MiB): " + outcomes
                        + "; the daemon answered each complete line once and kept serving");
        if (cases >= 400) {
            assertTrue(
                    outcomes.getOrDefault("ok", 0) > 0 && outcomes.getOrDefault("failure", 0) > 0, outcomes.toString());
        }
    }

    /** What the fuzzer sends: the bytes, and whether they end in a complete request line. */
    private record Request(byte[] bytes, boolean complete) {}

    private Request request(Random r, List<String> done) throws Exception {
        return switch (r.nextInt(12)) {
            case 0 -> {
                done.add("random bytes");
                byte[] b = new byte[r.nextInt(2000)];
                r.nextBytes(b);
                yield line(stripNewlines(b));
            }
            case 1 -> {
                int mib = 1 + r.nextInt(10);
                done.add(mib + " MB line");
                byte[] b = new byte[mib << 20];
                java.util.Arrays.fill(b, (byte) 'x');
                byte[] prefix = "{\"verb\":\"create\",\"name\":\"".getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(prefix, 0, b, 0, prefix.length);
                yield line(b);
            }
            case 2 -> {
                done.add("invalid UTF-8");
                byte[] valid = valid(r, done).getBytes(StandardCharsets.UTF_8);
                int at = r.nextInt(valid.length);
                valid[at] = (byte) (0x80 | r.nextInt(0x40)); // a continuation byte where none may stand
                if (r.nextBoolean()) {
                    valid[at] = (byte) 0xC0; // an overlong lead byte
                }
                yield line(stripNewlines(valid));
            }
            case 3 -> {
                int depth = r.nextBoolean() ? 100_000 : 1 + r.nextInt(3000);
                done.add("JSON nested " + depth + " deep");
                String open = r.nextBoolean() ? "[" : "{\"a\":";
                String close = open.equals("[") ? "]" : "}";
                yield line(("{\"verb\":\"ls\",\"name\":" + open.repeat(depth) + "1" + close.repeat(depth) + "}")
                        .getBytes(StandardCharsets.UTF_8));
            }
            case 4 -> {
                done.add("hang-up mid-request");
                byte[] v = valid(r, done).getBytes(StandardCharsets.UTF_8);
                yield new Request(java.util.Arrays.copyOf(v, r.nextInt(v.length)), false);
            }
            case 5 -> {
                done.add("two requests on one line");
                yield line((valid(r, done) + valid(r, done)).getBytes(StandardCharsets.UTF_8));
            }
            case 6, 7 -> {
                String v = valid(r, done);
                done.add("mutated");
                yield line(mutate(v.getBytes(StandardCharsets.UTF_8), r));
            }
            default -> line(valid(r, done).getBytes(StandardCharsets.UTF_8));
        };
    }

    private static Request line(byte[] b) {
        byte[] l = java.util.Arrays.copyOf(b, b.length + 1);
        l[b.length] = '\n';
        return new Request(l, true);
    }

    private static byte[] stripNewlines(byte[] b) {
        for (int i = 0; i < b.length; i++) {
            if (b[i] == '\n') {
                b[i] = ' ';
            }
        }
        return b;
    }

    private static final String PUNCTUATION = "{}[]\":,\\0 -e";

    private static byte[] mutate(byte[] b, Random r) {
        for (int n = 1 + r.nextInt(4); n > 0 && b.length > 0; n--) {
            int at = r.nextInt(b.length);
            b[at] = switch (r.nextInt(3)) {
                case 0 -> (byte) (b[at] ^ (1 << r.nextInt(8)));
                case 1 -> (byte) PUNCTUATION.charAt(r.nextInt(PUNCTUATION.length()));
                default -> (byte) r.nextInt(256);
            };
        }
        return stripNewlines(b);
    }

    /** A well-formed request of a random verb with hostile or plausible fields. */
    private String valid(Random r, List<String> done) {
        ObjectNode n = JSON.createObjectNode();
        String verb = r.nextInt(15) == 0 ? name(r, done) : VERBS[r.nextInt(VERBS.length)];
        n.put("verb", verb);
        if (r.nextInt(8) != 0) {
            n.put("name", name(r, done));
        }
        if (r.nextInt(3) == 0) {
            n.put("table", tables.get(r.nextInt(tables.size())));
        }
        if (r.nextInt(4) == 0) {
            n.put("newName", name(r, done));
        }
        if (r.nextInt(6) == 0) {
            n.put("uuid", name(r, done));
        }
        for (String flag : new String[] {"inactive", "noflush", "force", "notable", "readonly"}) {
            if (r.nextInt(5) == 0) {
                n.put(flag, r.nextBoolean());
            }
        }
        if (r.nextInt(10) == 0) {
            n.put("name", r.nextInt(1000)); // a number where text belongs
        }
        return n.toString();
    }

    private static String name(Random r, List<String> done) {
        return switch (r.nextInt(10)) {
            case 0 -> {
                done.add("name with /");
                yield "a/b";
            }
            case 1 -> {
                done.add("name with NUL");
                yield "a\0b";
            }
            case 2 -> {
                done.add("name with an unpaired surrogate");
                yield "a\uD800b";
            }
            case 3 -> {
                done.add("10000-character name");
                yield "n".repeat(10_000);
            }
            case 4 -> {
                done.add("name with control characters");
                yield "a\r\tb\u001b[2J";
            }
            case 5 -> ".".repeat(1 + r.nextInt(2));
            case 6 -> "guard";
            default -> "fz" + r.nextInt(4);
        };
    }

    /** Sends {@code bytes} on a new connection, closes its output, and reads everything until the server closes. */
    private String send(byte[] bytes) throws Exception {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(dir.resolve("control.sock")));
            ByteBuffer out = ByteBuffer.wrap(bytes);
            try {
                while (out.hasRemaining()) {
                    ch.write(out);
                }
                ch.shutdownOutput();
            } catch (java.io.IOException e) {
                // The server answered (an oversized request) and closed before taking everything.
            }
            ByteArrayOutputStream in = new ByteArrayOutputStream();
            ByteBuffer buf = ByteBuffer.allocate(64 << 10);
            try {
                while (ch.read(buf.clear()) >= 0) {
                    in.write(buf.array(), 0, buf.position());
                }
            } catch (java.io.IOException e) {
                // A reset after the answer: what came before it counts.
            }
            return in.toString(StandardCharsets.UTF_8);
        }
    }

    private void check(Request request, String answer) throws Exception {
        if (!request.complete()) {
            count(answer.isEmpty() ? "hang-up, no answer" : "hang-up, answered");
            assertTrue(
                    answer.isEmpty() || answer.endsWith("\n") && answer.indexOf('\n') == answer.length() - 1,
                    current + ": at most one answer line: " + answer);
            return;
        }
        assertTrue(
                answer.endsWith("\n") && answer.indexOf('\n') == answer.length() - 1,
                current + ": exactly one answer line, got [" + shorten(answer) + "]");
        ControlResponse response = ControlResponse.fromJson(answer.strip());
        switch (response) {
            case ControlResponse.Success s -> count("ok");
            case ControlResponse.Failure f -> {
                count("failure");
                assertNotEquals(Errno.UNKNOWN, f.errno(), current + ": errno " + f.errno());
                assertFalse(f.reason().isBlank(), current + ": a failure says why");
                assertEquals(1, f.reason().lines().count(), current + ": one-line reason: " + f.reason());
                assertTrue(
                        f.reason().length() < 4096,
                        current + ": reason of " + f.reason().length() + " chars: " + shorten(f.reason()));
            }
        }
    }

    /** The daemon still serves; only valid devices exist; the guard is unchanged; fuzz devices go. */
    private void afterCase() throws Exception {
        for (MappedDevice d : dm.list()) {
            DeviceManager.checkName(d.name());
            d.info();
        }
        if (dm.find("guard") != null
                && dm.get("guard").liveTable() != null
                && !dm.get("guard").info().suspended()) {
            assertEquals(guardStatus, status("guard"), current + ": the guard's status");
        }
        for (MappedDevice d : dm.list()) {
            if (!d.name().equals("guard")) {
                try {
                    d.resume(); // a suspended lower device would hold up the removal of one stacked on it
                } catch (dmsnap.device.DmException e) {
                    // No table, or its preresume refuses: removed anyway below.
                }
            }
        }
        for (int pass = 0; pass < 3; pass++) {
            for (MappedDevice d : dm.list()) {
                if (!d.name().equals("guard")) {
                    try {
                        dm.remove(d.name(), true);
                    } catch (dmsnap.device.DmException e) {
                        // Held by a device stacked on it: removed in a later pass.
                    }
                }
            }
        }
        MappedDevice guard = dm.find("guard");
        if (guard != null) {
            guard.clear(); // a table a request loaded into it and did not resume
        }
        if (guard == null
                || guard.liveTable() == null
                || !guard.liveTable().toString().contains(guardFile.toString())) {
            // A mutated request removed, cleared or reloaded the guard: bring it back as it was.
            if (guard != null) {
                dm.remove("guard", true);
            }
            dm.create("guard", null, TableParser.parse("0 128 linear " + guardFile + " 0"));
        }
        dm.get("guard").resume();
        assertTrue(
                java.util.Arrays.equals(guardBytes, Files.readAllBytes(guardFile)),
                current + ": the guard was written");
        assertEquals(guardStatus, status("guard"), current + ": the guard serves");
    }

    private void count(String outcome) {
        outcomes.merge(outcome, 1, Integer::sum);
    }

    private static String shorten(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }
}
