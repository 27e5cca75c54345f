package dmsnap.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import dmsnap.control.Json;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.Arrays;

/**
 * {@code dmsnap changed --json}: the document {@code {"device", "since", "size", "changedBytes",
 * "extents": [{"offset", "length"}...]}}, indented as every {@code --json} output. Its total comes
 * before its extents and after them on the wire, so the extents wait here, two numbers each
 * (16 MB for a million), and the document is written token by token at the end: no tree of it
 * is built.
 */
final class ChangedDocument implements ChangedPrinter {
    private final PrintWriter out;
    private String device;
    private String since;
    private long sizeBytes;
    /** Offset, length, offset, length... in bytes. */
    private long[] extents = new long[1024];

    private int count;

    ChangedDocument(PrintWriter out) {
        this.out = out;
    }

    @Override
    public boolean started() {
        return device != null;
    }

    @Override
    public void start(String device, String since, long sizeBytes) {
        this.device = device;
        this.since = since;
        this.sizeBytes = sizeBytes;
    }

    @Override
    public void extent(long offsetBytes, long lengthBytes) {
        if (2 * count == extents.length) {
            extents = Arrays.copyOf(extents, extents.length * 2);
        }
        extents[2 * count] = offsetBytes;
        extents[2 * count + 1] = lengthBytes;
        count++;
    }

    /** No half document. */
    @Override
    public void cutShort() {}

    @Override
    public void end(long changedBytes) throws IOException {
        try (JsonGenerator json = Json.prettyGenerator(out)) {
            json.writeStartObject();
            json.writeStringField("device", device);
            json.writeStringField("since", since);
            json.writeNumberField("size", sizeBytes);
            json.writeNumberField("changedBytes", changedBytes);
            json.writeArrayFieldStart("extents");
            for (int i = 0; i < count; i++) {
                json.writeStartObject();
                json.writeNumberField("offset", extents[2 * i]);
                json.writeNumberField("length", extents[2 * i + 1]);
                json.writeEndObject();
            }
            json.writeEndArray();
            json.writeEndObject();
        }
        out.println();
    }
}
