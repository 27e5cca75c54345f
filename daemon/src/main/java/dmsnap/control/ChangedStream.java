package dmsnap.control;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The answer to {@code changed} on the control socket, written as the daemon walks the change
 * map: a response line, as every verb answers, then on success one line per changed extent,
 * "OFFSET LENGTH" in bytes as {@code dmsnap changed} prints it, then a last response line.
 *
 * <pre>
 * {"ok":true,"lines":[],"data":{"device":"vol","since":"snap","size":8388608}}
 * 4096 8192
 * 40960 4096
 * {"ok":true,"lines":[],"data":{"changedBytes":12288}}
 * </pre>
 *
 * A refusal (no such device, not a baseline) is the first line alone, the one-line error every
 * verb gives. A failure during the walk (the baseline removed between two parts of it) takes the
 * last line's place, after the extents found so far. A million extents are some 17 MB of lines,
 * which neither side holds at once. (A daemon before this stream answered in one line, its data
 * a {@link ResponseData.Changed} with every extent: {@link #read} takes that too.)
 */
public final class ChangedStream {
    private ChangedStream() {}

    /** The daemon's side: the answer written to the client as it is made, in blocks. */
    static final class Writer implements ChangedExtents {
        private final OutputStream out;
        private final byte[] block = new byte[1 << 16];
        private int used;

        Writer(OutputStream out) {
            this.out = out;
        }

        @Override
        public void start(String device, String since, long sizeBytes) throws IOException {
            Map<String, Object> data = new LinkedHashMap<>();
            data.put("device", device);
            data.put("since", since);
            data.put("size", sizeBytes);
            line(ControlResponse.success(List.of(), data));
        }

        @Override
        public void extent(long offsetBytes, long lengthBytes) throws IOException {
            if (block.length - used < 2 * 20 + 2) {
                send();
            }
            used = digits(offsetBytes, used);
            block[used++] = ' ';
            used = digits(lengthBytes, used);
            block[used++] = '\n';
        }

        @Override
        public void end(long changedBytes) throws IOException {
            line(ControlResponse.success(List.of(), Map.of("changedBytes", changedBytes)));
            send();
        }

        /** The failure that ends the answer: in the first line's place, or in the last one's. */
        void fail(ControlResponse.Failure failure) throws IOException {
            line(failure);
            send();
        }

        private void line(ControlResponse response) throws IOException {
            send();
            byte[] json = (response.toJson() + "\n").getBytes(StandardCharsets.UTF_8);
            write(json, json.length);
        }

        /** {@code n} (not negative) in decimal at {@code at}; where it ends. */
        private int digits(long n, int at) {
            int length = 1;
            for (long rest = n / 10; rest > 0; rest /= 10) {
                length++;
            }
            for (int i = at + length - 1; i >= at; i--) {
                block[i] = (byte) ('0' + n % 10);
                n /= 10;
            }
            return at + length;
        }

        /** Sends what is in the block. */
        private void send() throws IOException {
            write(block, used);
            used = 0;
            try {
                out.flush();
            } catch (IOException e) {
                throw new WriteFailed(e);
            }
        }

        private void write(byte[] bytes, int length) throws IOException {
            try {
                out.write(bytes, 0, length);
            } catch (IOException e) {
                throw new WriteFailed(e);
            }
        }
    }

    /** Writing the answer failed: the client went away. */
    static final class WriteFailed extends IOException {
        private static final long serialVersionUID = 1L;

        WriteFailed(IOException cause) {
            super(cause.getMessage(), cause);
        }
    }

    /**
     * The client's side: reads an answer from {@code in}, handing it to {@code into} as it comes.
     *
     * @return the daemon's failure, or null when the answer ended well
     * @throws IOException reading failed, or the daemon's answer broke off or is not one
     */
    public static ControlResponse.Failure read(InputStream in, ChangedExtents into) throws IOException {
        Lines lines = new Lines(in);
        String first = lines.json();
        if (first == null) {
            throw new IOException("the daemon closed the connection without an answer");
        }
        switch (ControlResponse.fromJson(first)) {
            case ControlResponse.Failure f -> {
                return f;
            }
            case ControlResponse.Success s -> {
                JsonNode d = s.data();
                if (d == null
                        || !d.path("device").isTextual()
                        || !d.path("size").canConvertToLong()) {
                    throw new IOException("the daemon's answer to changed does not start with the device: " + first);
                }
                into.start(
                        d.get("device").textValue(),
                        d.path("since").asText(),
                        d.get("size").asLong());
                if (d.path("extents").isArray()) {
                    return readWhole(d, into);
                }
            }
        }
        while (true) {
            int next = lines.peek();
            if (next < 0) {
                throw new IOException("the daemon's answer to changed broke off");
            }
            if (next != '{') {
                long offset = lines.number(' ');
                into.extent(offset, lines.number('\n'));
                continue;
            }
            String last = lines.json();
            switch (ControlResponse.fromJson(last)) {
                case ControlResponse.Failure f -> {
                    return f;
                }
                case ControlResponse.Success s -> {
                    JsonNode d = s.data();
                    if (d == null || !d.path("changedBytes").canConvertToLong()) {
                        throw new IOException("the daemon's answer to changed ends without its total: " + last);
                    }
                    into.end(d.get("changedBytes").asLong());
                    return null;
                }
            }
        }
    }

    /** An older daemon's answer: every extent in its one line ({@link ResponseData.Changed}). */
    private static ControlResponse.Failure readWhole(JsonNode data, ChangedExtents into) throws IOException {
        for (JsonNode e : data.get("extents")) {
            into.extent(e.path("offset").asLong(), e.path("length").asLong());
        }
        into.end(data.path("changedBytes").asLong());
        return null;
    }

    /** The answer's lines from a stream, read in blocks: JSON ones as text, extent ones as numbers. */
    private static final class Lines {
        private final InputStream in;
        private final byte[] block = new byte[1 << 16];
        private int at;
        private int limit;

        Lines(InputStream in) {
            this.in = in;
        }

        /** The next byte, not taken; -1 at the end. */
        int peek() throws IOException {
            if (at == limit) {
                int n = in.read(block);
                if (n < 0) {
                    return -1;
                }
                at = 0;
                limit = n;
            }
            return block[at] & 0xff;
        }

        /** The next line as text, or null at the end. */
        String json() throws IOException {
            ByteArrayOutputStream line = new ByteArrayOutputStream();
            while (peek() >= 0) {
                int start = at;
                while (at < limit && block[at] != '\n') {
                    at++;
                }
                line.write(block, start, at - start);
                if (at < limit) {
                    at++; // the newline
                    return line.toString(StandardCharsets.UTF_8);
                }
            }
            return line.size() == 0 ? null : line.toString(StandardCharsets.UTF_8);
        }

        /** A decimal number ended by {@code end}, which is taken too. */
        long number(char end) throws IOException {
            long n = 0;
            int count = 0;
            int b;
            while ((b = peek()) >= '0' && b <= '9' && count < 19) {
                n = n * 10 + (b - '0');
                count++;
                at++;
            }
            if (count == 0 || b != end) {
                throw new IOException("the daemon's answer to changed has a line that is no extent");
            }
            at++;
            return n;
        }
    }
}
