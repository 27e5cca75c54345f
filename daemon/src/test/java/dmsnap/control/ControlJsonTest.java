package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.table.TableParser;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The control protocol's JSON: the wire format of requests, responses and their data is what
 * clients and scripts know (keys, value types, which keys are left out), and the reader's limits
 * ({@link Json}) turn hostile requests into one-line reasons before anything is built from them.
 */
class ControlJsonTest {
    @TempDir
    Path dir;

    private static final String FLAGS_OFF =
            "\"inactive\":false,\"noflush\":false,\"force\":false,\"notable\":false," + "\"readonly\":false";

    @Test
    void requestsLeaveOutUnsetArgumentsAndAlwaysCarryTheFlags() throws IOException {
        assertEquals(
                "{\"verb\":\"ls\"," + FLAGS_OFF + "}",
                ControlRequest.of("ls", null).toJson());
        ControlRequest all = new ControlRequest("create", "a", "0 8 zero", "u-1", "b", true, true, true, true, true);
        assertEquals(
                "{\"verb\":\"create\",\"name\":\"a\",\"table\":\"0 8 zero\",\"uuid\":\"u-1\",\"newName\":\"b\","
                        + "\"inactive\":true,\"noflush\":true,\"force\":true,\"notable\":true,\"readonly\":true}",
                all.toJson());
        assertEquals(all, ControlRequest.fromJson(all.toJson()));
        assertEquals(
                ControlRequest.of("ls", null), ControlRequest.fromJson("{\"verb\":\"ls\"}"), "flags default to false");
        assertEquals(
                ControlRequest.of("ls", "x"),
                ControlRequest.fromJson("{\"verb\":\"ls\",\"name\":\"x\",\"inactive\":null,"
                        + "\"from\":\"a newer client\",\"extra\":{\"a\":[1,2]}}"),
                "unknown keys are ignored, null flags are false");
    }

    @Test
    void responsesAreOkWithLinesAndDataOrAFailureWithErrnoAndReason() throws IOException {
        assertEquals(
                "{\"ok\":true,\"lines\":[\"a\",\"b\"]}", new ControlResponse.Success(List.of("a", "b"), null).toJson());
        assertEquals(
                "{\"ok\":true,\"lines\":[],\"data\":{\"x\":[\"1\"]}}",
                ControlResponse.success(List.of(), Map.of("x", List.of("1"))).toJson());
        assertEquals(
                "{\"ok\":false,\"operation\":\"reload\",\"errno\":\"EINVAL\",\"reason\":\"linear: Invalid argument count\"}",
                new ControlResponse.Failure("reload", Errno.EINVAL, "linear: Invalid argument count").toJson());
        assertEquals(
                "{\"ok\":false,\"operation\":\"remove\",\"errno\":\"EBUSY\",\"reason\":null}",
                new ControlResponse.Failure("remove", Errno.EBUSY, null).toJson());

        ControlResponse.Success s = assertInstanceOf(
                ControlResponse.Success.class,
                ControlResponse.fromJson("{\"ok\":true,\"lines\":[\"a\"],\"data\":{\"k\":1}}"));
        assertEquals(List.of("a"), s.lines());
        assertEquals(1, s.data().path("k").asInt());
        assertEquals(new ControlResponse.Success(List.of(), null), ControlResponse.fromJson("{\"ok\":true}"));
        assertEquals(
                new ControlResponse.Failure("", Errno.EIO, ""),
                ControlResponse.fromJson("{\"ok\":false}"),
                "a failure without errno is EIO");
        ControlResponse.Failure busy = assertInstanceOf(
                ControlResponse.Failure.class,
                ControlResponse.fromJson(
                        "{\"ok\":false,\"operation\":\"remove\",\"errno\":\"EBUSY\",\"reason\":\"r\"}"));
        assertEquals(new ControlResponse.Failure("remove", Errno.EBUSY, "r"), busy);
        assertEquals("Device or resource busy", busy.errnoText());
    }

    @Test
    void anErrnoNameThisBuildDoesNotKnowIsUnknownAndShownAsItCame() throws IOException {
        String wire = "{\"ok\":false,\"operation\":\"merge\",\"errno\":\"ENEWTHING\",\"reason\":\"r\"}";
        ControlResponse.Failure f = assertInstanceOf(ControlResponse.Failure.class, ControlResponse.fromJson(wire));
        assertEquals(Errno.UNKNOWN, f.errno());
        assertEquals("ENEWTHING", f.errnoText(), "a daemon of another version may name more");
        assertEquals(wire, f.toJson(), "and it is written back as it came");
        assertEquals(
                new ControlResponse.Failure("merge", Errno.EIO, "r"),
                new ControlResponse.Failure("merge", Errno.EIO, "r", "ENEWTHING"),
                "a name is kept only for an errno this build does not know");
        assertEquals(
                "{\"ok\":false,\"operation\":\"merge\",\"errno\":\"EINVAL\",\"reason\":\"x\"}",
                ControlResponse.fromJson("{\"ok\":false,\"operation\":\"merge\",\"errno\":\"EINVAL\",\"reason\":\"x\"}")
                        .toJson());
    }

    @Test
    void theDataOfInfoLsStatusTableAndTargetsKeepsItsKeysAndTypes() throws Exception {
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        dm.create("z", null, TableParser.parse("0 8 zero"));
        MappedDevice z = dm.get("z");
        ControlHandler handler = new ControlHandler(dm, "test");

        JsonNode info = data(handler, ControlRequest.of("info", "z"));
        JsonNode device = info.path("devices").path(0);
        assertEquals(
                List.of(
                        "name",
                        "uuid",
                        "state",
                        "readOnly",
                        "tablesPresent",
                        "openCount",
                        "eventNumber",
                        "major",
                        "minor",
                        "targets",
                        "cache"),
                keys(device));
        assertEquals("z", device.get("name").textValue());
        assertTrue(device.get("uuid").isNull(), "no uuid: null, not left out");
        assertEquals("ACTIVE", device.get("state").textValue());
        assertTrue(device.get("readOnly").isBoolean());
        assertEquals("LIVE", device.get("tablesPresent").textValue());
        for (String number : List.of("openCount", "eventNumber", "major", "minor", "targets")) {
            assertTrue(device.get(number).isIntegralNumber(), number);
        }
        assertEquals(1, device.get("targets").intValue());
        assertEquals("directsync", device.get("cache").textValue(), "the engine's default: the kernel's rule");

        assertEquals("{\"z\":\"253:" + z.minor() + "\"}", Json.write(data(handler, ControlRequest.of("ls", null))));
        String line = z.statusLines(dmsnap.target.StatusType.TABLE, false).getFirst();
        assertEquals("{\"z\":[\"" + line + "\"]}", Json.write(data(handler, ControlRequest.of("table", "z"))));
        assertEquals("{\"z\":[\"" + line + "\"]}", Json.write(data(handler, ControlRequest.of("table", null))));
        JsonNode status = data(handler, ControlRequest.of("status", null));
        assertEquals(List.of("z"), keys(status));
        assertTrue(status.get("z").isArray() && status.get("z").get(0).isTextual(), status.toString());
        JsonNode targets = data(handler, ControlRequest.of("targets", null));
        assertTrue(targets.path("zero").isTextual() && targets.path("linear").isTextual(), targets.toString());
    }

    private static JsonNode data(ControlHandler handler, ControlRequest request) {
        return assertInstanceOf(ControlResponse.Success.class, handler.handle(request))
                .data();
    }

    private static List<String> keys(JsonNode n) {
        List<String> keys = new ArrayList<>();
        n.fieldNames().forEachRemaining(keys::add);
        return keys;
    }

    private static String refusal(String line) {
        return assertThrows(IOException.class, () -> ControlRequest.fromJson(line))
                .getMessage();
    }

    @Test
    void nestingDeeperThanTheLimitIsRefusedWhileParsing() throws IOException {
        int depth = Json.MAX_NESTING_DEPTH - 1; // the request object is the first level
        ControlRequest.fromJson("{\"verb\":\"ls\",\"x\":" + "[".repeat(depth) + "]".repeat(depth) + "}");
        String tooDeep = "{\"verb\":\"ls\",\"x\":" + "[".repeat(depth + 1) + "]".repeat(depth + 1) + "}";
        assertEquals(
                "malformed request: document nesting depth (" + (Json.MAX_NESTING_DEPTH + 1)
                        + ") exceeds the maximum allowed (" + Json.MAX_NESTING_DEPTH + ")",
                refusal(tooDeep));
        assertTrue(
                refusal("{\"verb\":\"ls\",\"x\":" + "{\"a\":".repeat(100_000) + "1" + "}".repeat(100_000) + "}")
                        .startsWith("malformed request: document nesting depth"),
                "skipping an unknown key counts too");
        assertEquals(
                "malformed request: 'name' is not a string",
                refusal("{\"verb\":\"ls\",\"name\":" + "[".repeat(100_000) + "]".repeat(100_000) + "}"),
                "refused at its first bracket");
    }

    @Test
    void stringsAndKeysLongerThanTheLimitsAreRefused() throws IOException {
        String longest = "n".repeat(Json.MAX_STRING_CHARS);
        assertEquals(
                longest,
                ControlRequest.fromJson("{\"verb\":\"ls\",\"name\":\"" + longest + "\"}")
                        .name());
        String tooLong = refusal("{\"verb\":\"ls\",\"name\":\"" + longest + "n\"}");
        assertTrue(
                tooLong.startsWith("malformed request: string value length (")
                        && tooLong.endsWith(") exceeds the maximum allowed (" + Json.MAX_STRING_CHARS + ")"),
                tooLong);
        assertTrue(
                refusal("{\"verb\":\"ls\",\"x\":\"" + longest + "n\"}")
                        .startsWith("malformed request: string value length"),
                "an unknown key's value too");
        String key = "k".repeat(Json.MAX_NAME_CHARS + 1);
        assertEquals(
                "malformed request: key length (" + (Json.MAX_NAME_CHARS + 1) + ") exceeds the maximum allowed ("
                        + Json.MAX_NAME_CHARS + ")",
                refusal("{\"verb\":\"ls\",\"" + key + "\":1}"));
    }

    @Test
    void wrongTypesAreRefusedAndNamed() {
        assertEquals("malformed request: no verb", refusal("{\"verb\":5}"));
        assertEquals("malformed request: no verb", refusal("{\"verb\":[\"ls\"]}"));
        assertEquals("malformed request: no verb", refusal("{\"name\":\"x\"}"));
        assertEquals("malformed request: no verb", refusal("[{\"verb\":\"ls\"}]"));
        assertEquals("malformed request: no verb", refusal("\"ls\""));
        assertEquals("malformed request: no verb", refusal("null"));
        assertEquals("malformed request: no verb", refusal(""));
        assertEquals("malformed request: not JSON", refusal("{\"verb\":\"ls\""));
        assertEquals("malformed request: not JSON", refusal("{verb:ls}"));
        assertEquals("malformed request: 'name' is not a string", refusal("{\"verb\":\"ls\",\"name\":1000}"));
        assertEquals("malformed request: 'table' is not a string", refusal("{\"verb\":\"load\",\"table\":{\"a\":1}}"));
        assertEquals("malformed request: 'newName' is not a string", refusal("{\"verb\":\"rename\",\"newName\":true}"));
        assertEquals(
                "malformed request: 'readonly' is not true or false", refusal("{\"verb\":\"load\",\"readonly\":1}"));
        assertEquals(
                "malformed request: 'force' is not true or false", refusal("{\"verb\":\"remove\",\"force\":\"yes\"}"));
    }

    @Test
    void overTheSocketEachRefusalIsOneEinvalLine() throws Exception {
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try (ControlServer server = new ControlServer(dir.resolve("control.sock"), new ControlHandler(dm, "test"))) {
            for (String request : List.of(
                    "{\"verb\":\"ls\",\"name\":" + "[".repeat(5000) + "]".repeat(5000) + "}",
                    "{\"verb\":\"create\",\"name\":1000,\"table\":\"0 8 zero\"}",
                    "{\"verb\":\"create\",\"name\":\"a\",\"table\":\"0 8 zero\",\"readonly\":\"no\"}",
                    "{\"verb\":\"ls\",\"" + "k".repeat(100_000) + "\":1}")) {
                String answer = raw(dir.resolve("control.sock"), request + "\n");
                assertTrue(answer.endsWith("\n") && answer.indexOf('\n') == answer.length() - 1, answer);
                ControlResponse.Failure f =
                        assertInstanceOf(ControlResponse.Failure.class, ControlResponse.fromJson(answer));
                assertEquals("request", f.operation());
                assertEquals(Errno.EINVAL, f.errno());
                assertTrue(f.reason().startsWith("malformed request: "), f.reason());
            }
            assertEquals(List.of(), dm.list(), "nothing was created");
        }
    }

    private static String raw(Path socket, String request) throws IOException {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ByteBuffer out = ByteBuffer.wrap(request.getBytes(StandardCharsets.UTF_8));
            while (out.hasRemaining()) {
                ch.write(out);
            }
            ch.shutdownOutput();
            java.io.ByteArrayOutputStream in = new java.io.ByteArrayOutputStream();
            ByteBuffer buf = ByteBuffer.allocate(8192);
            while (ch.read(buf.clear()) >= 0) {
                in.write(buf.array(), 0, buf.position());
            }
            return in.toString(StandardCharsets.UTF_8);
        }
    }
}
