package dmsnap.control;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.type.LogicalType;
import java.io.IOException;
import java.io.Writer;

/**
 * The daemon's one JSON configuration: control requests and responses, the CLI's {@code --json}
 * output, {@code cow dump --json}. Values are records bound by Jackson; nothing is written by hand
 * but the {@code changed --json} document, token by token through {@link #prettyGenerator}.
 *
 * <p>Reading is bounded, whoever sent the text (a control client may be hostile): nesting
 * deeper than {@value #MAX_NESTING_DEPTH} levels (dmsnap's own messages are 4 deep), a string
 * longer than {@value #MAX_STRING_CHARS} characters (a request line is at most that many bytes)
 * or a key longer than {@value #MAX_NAME_CHARS} characters (keys are field or device names) is
 * refused while parsing, before anything is built from it. Types are strict: a number or a
 * boolean is not a string, and only {@code true}/{@code false} (or null, false) are booleans.
 * Unknown keys are ignored, so that an older daemon understands a newer client.
 */
public final class Json {
    public static final int MAX_NESTING_DEPTH = 64;
    public static final int MAX_STRING_CHARS = ControlServer.MAX_REQUEST_BYTES;
    public static final int MAX_NAME_CHARS = 1024;

    private static final JsonMapper MAPPER = mapper();

    private Json() {}

    private static JsonMapper mapper() {
        JsonFactory factory = JsonFactory.builder()
                .streamReadConstraints(StreamReadConstraints.builder()
                        .maxNestingDepth(MAX_NESTING_DEPTH)
                        .maxStringLength(MAX_STRING_CHARS)
                        .maxNameLength(MAX_NAME_CHARS)
                        .build())
                .build();
        JsonMapper mapper = JsonMapper.builder(factory)
                .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .build();
        mapper.coercionConfigFor(LogicalType.Textual)
                .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail);
        mapper.coercionConfigFor(LogicalType.Boolean)
                .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.String, CoercionAction.Fail);
        return mapper;
    }

    /** {@code value} as one line of JSON. */
    public static String write(Object value) {
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write " + value.getClass().getName() + " as JSON", e);
        }
    }

    /** {@code value} as indented JSON, for people ({@code --json}). */
    public static String writePretty(Object value) {
        try {
            return MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write " + value.getClass().getName() + " as JSON", e);
        }
    }

    /**
     * A generator of indented JSON into {@code out}, laid out as {@link #writePretty} lays out a
     * value, for a document too long to build first ({@code changed --json}: a million extents).
     * Closing it flushes {@code out} and leaves it open.
     */
    public static JsonGenerator prettyGenerator(Writer out) throws IOException {
        JsonGenerator generator = MAPPER.writerWithDefaultPrettyPrinter().createGenerator(out);
        generator.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
        return generator;
    }

    /** {@code value} as a tree (the data of a {@link ControlResponse.Success}); null stays null. */
    public static JsonNode tree(Object value) {
        return value == null ? null : MAPPER.valueToTree(value);
    }

    /** Parses {@code text} into a {@code type}, within the limits above. */
    public static <T> T read(String text, Class<T> type) throws JsonProcessingException {
        return MAPPER.readValue(text, type);
    }

    /** Binds a tree (a response's data) to a {@code type}. */
    public static <T> T read(JsonNode tree, Class<T> type) throws JsonProcessingException {
        return MAPPER.treeToValue(tree, type);
    }

    /**
     * Which limit a failed read went over, in one line ("document nesting depth (65) exceeds the
     * maximum allowed (64)", "key length (2000) exceeds the maximum allowed (1024)"), or null when it
     * went over none.
     */
    public static String limitExceeded(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause()) {
            if (t instanceof StreamConstraintsException e) {
                // Jackson's sentence, without the name of the setting it comes from; a JSON "name" is a key.
                String m = e.getOriginalMessage()
                        .replaceAll(", from `[^`]*`", "")
                        .replaceFirst("^Name length", "Key length")
                        .replaceAll("\\s+", " ")
                        .strip();
                return m.isEmpty() ? "over a JSON limit" : Character.toLowerCase(m.charAt(0)) + m.substring(1);
            }
        }
        return null;
    }
}
