package dmsnap.control;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamReadException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import java.io.IOException;
import java.util.List;

/**
 * One control request: a dmsetup verb and its arguments ({@code name}, {@code table},
 * {@code uuid}, {@code newName}, flags; {@code readOnly} is dmsetup's {@code --readonly} for create
 * and load; {@code cache} is dmsnap's {@code --cache MODE} for create and load, null for the
 * device's mode or the daemon's default; {@code since} is the snapshot {@code changed} compares
 * with). On the wire: one line of JSON, this record bound by
 * {@link Json}; arguments that are not set are left out, flags are always there:
 * {@code {"verb":"load","name":"snap","table":"0 8 zero","inactive":false,"noflush":false,"force":false,"notable":false,"readonly":false}}.
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ControlRequest(
        String verb,
        String name,
        String table,
        String uuid,
        String newName,
        boolean inactive,
        boolean noflush,
        boolean force,
        boolean notable,
        @JsonProperty("readonly") boolean readOnly,
        String cache,
        String since) {

    /** A request without a snapshot to compare with (every verb but changed). */
    public ControlRequest(
            String verb,
            String name,
            String table,
            String uuid,
            String newName,
            boolean inactive,
            boolean noflush,
            boolean force,
            boolean notable,
            boolean readOnly,
            String cache) {
        this(verb, name, table, uuid, newName, inactive, noflush, force, notable, readOnly, cache, null);
    }

    /** A request without a cache mode (every verb but create and load). */
    public ControlRequest(
            String verb,
            String name,
            String table,
            String uuid,
            String newName,
            boolean inactive,
            boolean noflush,
            boolean force,
            boolean notable,
            boolean readOnly) {
        this(verb, name, table, uuid, newName, inactive, noflush, force, notable, readOnly, null);
    }

    /** {@code changed}: the extents of {@code name} changed since snapshot {@code since} was taken. */
    public static ControlRequest changed(String name, String since) {
        return new ControlRequest("changed", name, null, null, null, false, false, false, false, false, null, since);
    }

    public static ControlRequest of(String verb, String name) {
        return new ControlRequest(verb, name, null, null, null, false, false, false, false, false);
    }

    public String toJson() {
        return Json.write(this);
    }

    /**
     * Parses one request line; anything malformed is an {@link IOException} with a one-line reason:
     * not JSON, no verb (none, not a string, not an object), a limit of {@link Json} exceeded, or
     * an argument of the wrong type.
     */
    public static ControlRequest fromJson(String line) throws IOException {
        ControlRequest r;
        try {
            r = Json.read(line, ControlRequest.class);
        } catch (JsonProcessingException e) {
            String limit = Json.limitExceeded(e);
            if (limit != null) {
                throw new IOException("malformed request: " + limit);
            }
            if (e instanceof StreamReadException) {
                throw new IOException("malformed request: not JSON");
            }
            List<JsonMappingException.Reference> path = e instanceof JsonMappingException m ? m.getPath() : List.of();
            String field = path.isEmpty() ? null : path.getFirst().getFieldName();
            if (field == null || field.equals("verb")) {
                throw new IOException("malformed request: no verb");
            }
            Class<?> expected = e instanceof MismatchedInputException m ? m.getTargetType() : null;
            throw new IOException("malformed request: '" + field + "' is not "
                    + (expected == boolean.class ? "true or false" : "a string"));
        }
        if (r == null || r.verb() == null) {
            throw new IOException("malformed request: no verb");
        }
        return r;
    }
}
