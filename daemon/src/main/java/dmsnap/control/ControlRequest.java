package dmsnap.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;

/**
 * One control request: a dmsetup verb and its arguments ({@code name}, {@code table},
 * {@code uuid}, {@code newName}, flags; {@code readOnly} is dmsetup's {@code --readonly} for create and load). On the wire: one line of JSON.
 */
public record ControlRequest(String verb, String name, String table, String uuid, String newName,
                             boolean inactive, boolean noflush, boolean force, boolean notable, boolean readOnly) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static ControlRequest of(String verb, String name) {
        return new ControlRequest(verb, name, null, null, null, false, false, false, false, false);
    }

    public String toJson() {
        ObjectNode n = JSON.createObjectNode();
        n.put("verb", verb);
        putIfSet(n, "name", name);
        putIfSet(n, "table", table);
        putIfSet(n, "uuid", uuid);
        putIfSet(n, "newName", newName);
        n.put("inactive", inactive);
        n.put("noflush", noflush);
        n.put("force", force);
        n.put("notable", notable);
        n.put("readonly", readOnly);
        return n.toString();
    }

    private static void putIfSet(ObjectNode n, String key, String value) {
        if (value != null) {
            n.put(key, value);
        }
    }

    /** Parses one request line; anything malformed is an {@link IOException} with a one-line reason. */
    public static ControlRequest fromJson(String line) throws IOException {
        JsonNode n;
        try {
            n = JSON.readTree(line);
        } catch (IOException e) {
            throw new IOException("malformed request: not JSON");
        }
        if (n == null || !n.isObject() || !n.path("verb").isTextual()) {
            throw new IOException("malformed request: no verb");
        }
        return new ControlRequest(n.get("verb").asText(), text(n, "name"), text(n, "table"), text(n, "uuid"),
                text(n, "newName"), n.path("inactive").asBoolean(false), n.path("noflush").asBoolean(false),
                n.path("force").asBoolean(false), n.path("notable").asBoolean(false), n.path("readonly").asBoolean(false));
    }

    private static String text(JsonNode n, String key) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? null : v.asText();
    }
}
