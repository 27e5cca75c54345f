package dmsnap.control;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.JsonNode;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.util.List;
import java.util.Objects;

/**
 * The answer to a request: output lines as dmsetup prints them, or a failure with errno and reason.
 * On the wire: one line of JSON, {@code {"ok":true,"lines":[...],"data":{...}}} or
 * {@code {"ok":false,"operation":"reload","errno":"EINVAL","reason":"..."}}, bound by {@link Json}.
 */
public sealed interface ControlResponse {

    /**
     * Success, with the lines to print (none for most verbs) and structured data for --json (the
     * records of {@link ResponseData}, or null: then there is no {@code data} key).
     */
    @JsonPropertyOrder({"ok", "lines", "data"})
    record Success(
            List<String> lines,
            @JsonInclude(JsonInclude.Include.NON_NULL) JsonNode data) implements ControlResponse {
        @Override
        @JsonProperty("ok")
        public boolean ok() {
            return true;
        }
    }

    /**
     * Failure: the ioctl-style operation that failed ("reload", "resume", "remove"...), the errno,
     * and the kernel's reason (target and sentence) when there is one. On the wire the errno is its
     * name ("EBUSY"). A name this build does not know (from a daemon of another version) is read as
     * {@link Errno#UNKNOWN} and kept in {@code unknownErrno}, which is only ever set then, so that
     * it is shown as it came ({@link #errnoText()}).
     */
    @JsonPropertyOrder({"ok", "operation", "errno", "reason"})
    record Failure(
            String operation,
            @JsonIgnore Errno errno,
            String reason,
            @JsonIgnore String unknownErrno) implements ControlResponse {
        /** A reason is one line whatever it quotes (a name or path with control characters). */
        public Failure {
            Objects.requireNonNull(errno, "errno");
            reason = reason == null ? null : dmsnap.device.DeviceManager.printable(reason);
            unknownErrno = errno == Errno.UNKNOWN ? unknownErrno : null;
        }

        public Failure(String operation, Errno errno, String reason) {
            this(operation, errno, reason, null);
        }

        /** The errno's name on the wire ("EBUSY"), or a name this build does not know as it came. */
        @JsonProperty("errno")
        public String errnoName() {
            return unknownErrno != null ? unknownErrno : errno.name();
        }

        /** The errno's text for people ("Device or resource busy"), or a name this build does not know as it came. */
        public String errnoText() {
            return unknownErrno != null ? unknownErrno : errno.text();
        }

        @Override
        @JsonProperty("ok")
        public boolean ok() {
            return false;
        }
    }

    /** Whether this is a {@link Success} (the {@code ok} key on the wire). */
    boolean ok();

    /** A success whose data is {@code data} (a record of {@link ResponseData}, a map, or null) as a tree. */
    static Success success(List<String> lines, Object data) {
        return new Success(lines, Json.tree(data));
    }

    default String toJson() {
        return Json.write(this);
    }

    static ControlResponse fromJson(String line) throws IOException {
        return Json.read(line, ControlResponse.class);
    }

    /**
     * The reading side of the wire format, for {@link Json}: {@code ok} chooses the record; a
     * missing {@code errno} is EIO, one this build does not name {@link Errno#UNKNOWN} (keeping
     * the name), a missing reason empty.
     */
    @JsonCreator
    static ControlResponse fromWire(
            @JsonProperty("ok") boolean ok,
            @JsonProperty("lines") List<String> lines,
            @JsonProperty("data") JsonNode data,
            @JsonProperty("operation") String operation,
            @JsonProperty("errno") String errno,
            @JsonProperty("reason") String reason) {
        if (ok) {
            return new Success(lines == null ? List.of() : lines, data);
        }
        Errno named = errno == null ? Errno.EIO : Errno.named(errno);
        return new Failure(operation == null ? "" : operation, named, reason == null ? "" : reason, errno);
    }
}
