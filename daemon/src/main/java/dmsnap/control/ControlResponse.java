package dmsnap.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** The answer to a request: output lines as dmsetup prints them, or a failure with errno and reason. */
public sealed interface ControlResponse {

    /** Success, with the lines to print (none for most verbs) and structured data for --json. */
    record Success(List<String> lines, JsonNode data) implements ControlResponse {
    }

    /**
     * Failure: the ioctl-style operation that failed ("reload", "resume", "remove"...), the errno
     * name, and the kernel's reason (target and sentence) when there is one.
     */
    record Failure(String operation, String errno, String reason) implements ControlResponse {
        /** A reason is one line whatever it quotes (a name or path with control characters). */
        public Failure {
            reason = reason == null ? null : dmsnap.device.DeviceManager.printable(reason);
        }
    }

    ObjectMapper JSON = new ObjectMapper();

    default String toJson() {
        ObjectNode n = JSON.createObjectNode();
        switch (this) {
            case Success s -> {
                n.put("ok", true);
                ArrayNode lines = n.putArray("lines");
                s.lines().forEach(lines::add);
                if (s.data() != null) {
                    n.set("data", s.data());
                }
            }
            case Failure f -> {
                n.put("ok", false);
                n.put("operation", f.operation());
                n.put("errno", f.errno());
                n.put("reason", f.reason());
            }
        }
        return n.toString();
    }

    static ControlResponse fromJson(String line) throws IOException {
        JsonNode n = JSON.readTree(line);
        if (n.path("ok").asBoolean(false)) {
            List<String> lines = new ArrayList<>();
            n.path("lines").forEach(l -> lines.add(l.asText()));
            return new Success(lines, n.get("data"));
        }
        return new Failure(n.path("operation").asText(), n.path("errno").asText("EIO"), n.path("reason").asText(""));
    }
}
