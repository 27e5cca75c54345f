package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The {@code changed} answer on the wire ({@link ChangedStream}): written as it is made, read as it comes. */
class ChangedStreamTest {
    /** What a reader was handed, one string each. */
    private static final class Recorded implements ChangedExtents {
        final List<String> seen = new ArrayList<>();

        @Override
        public void start(String device, String since, long sizeBytes) {
            seen.add("start " + device + " " + since + " " + sizeBytes);
        }

        @Override
        public void extent(long offsetBytes, long lengthBytes) {
            seen.add(offsetBytes + " " + lengthBytes);
        }

        @Override
        public void end(long changedBytes) {
            seen.add("end " + changedBytes);
        }
    }

    private static ControlResponse.Failure read(String wire, Recorded into) throws IOException {
        return ChangedStream.read(new ByteArrayInputStream(wire.getBytes(StandardCharsets.UTF_8)), into);
    }

    @Test
    void anAnswerGoesAcrossAsItIsMadeInBlocks() throws Exception {
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        ChangedStream.Writer w = new ChangedStream.Writer(wire);
        Recorded written = new Recorded();
        w.start("vol", "snap", 1L << 62);
        written.start("vol", "snap", 1L << 62);
        for (long i = 0; i < 20_000; i++) { // several blocks of lines
            long offset = i == 19_999 ? (1L << 62) - 4096 : i * 8192;
            w.extent(offset, 4096);
            written.extent(offset, 4096);
        }
        w.end(20_000 * 4096L);
        written.end(20_000 * 4096L);
        String text = wire.toString(StandardCharsets.UTF_8);
        assertTrue(
                text.startsWith("{\"ok\":true,\"lines\":[],\"data\":{\"device\":\"vol\",\"since\":\"snap\",\"size\":"
                        + (1L << 62) + "}}\n0 4096\n8192 4096\n"),
                text.substring(0, 200));
        assertTrue(
                text.endsWith(
                        "\n4611686018427383808 4096\n{\"ok\":true,\"lines\":[],\"data\":{\"changedBytes\":81920000}}\n"),
                text.substring(text.length() - 200));
        Recorded read = new Recorded();
        assertNull(read(text, read));
        assertEquals(written.seen, read.seen);
    }

    @Test
    void aRefusalIsTheFirstLineAloneAndAFailureDuringTheWalkTheLast() throws Exception {
        ControlResponse.Failure refusal =
                new ControlResponse.Failure("changed", Errno.EINVAL, "vol cannot be compared");
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        new ChangedStream.Writer(wire).fail(refusal);
        assertEquals(refusal.toJson() + "\n", wire.toString(StandardCharsets.UTF_8), "as every verb refuses");
        Recorded nothing = new Recorded();
        assertEquals(refusal, read(wire.toString(StandardCharsets.UTF_8), nothing));
        assertEquals(List.of(), nothing.seen);

        ControlResponse.Failure gone = new ControlResponse.Failure("changed", Errno.EIO, "no valid snapshot snap");
        wire.reset();
        ChangedStream.Writer w = new ChangedStream.Writer(wire);
        w.start("vol", "snap", 1 << 20);
        w.extent(4096, 8192);
        w.fail(gone);
        Recorded partial = new Recorded();
        assertEquals(gone, read(wire.toString(StandardCharsets.UTF_8), partial));
        assertEquals(List.of("start vol snap 1048576", "4096 8192"), partial.seen, "the extents found until then");
    }

    @Test
    void anAnswerThatBreaksOffOrIsNoneIsAnError() {
        String start = "{\"ok\":true,\"lines\":[],\"data\":{\"device\":\"vol\",\"since\":\"snap\",\"size\":1048576}}\n";
        assertEquals(
                "the daemon's answer to changed broke off",
                assertThrows(IOException.class, () -> read(start + "4096 8192\n", new Recorded()))
                        .getMessage());
        assertEquals(
                "the daemon's answer to changed has a line that is no extent",
                assertThrows(IOException.class, () -> read(start + "4096 x\n", new Recorded()))
                        .getMessage());
        assertEquals(
                "the daemon closed the connection without an answer",
                assertThrows(IOException.class, () -> read("", new Recorded())).getMessage());
    }

    @Test
    void anOlderDaemonsOneLineAnswerIsReadToo() throws Exception {
        ControlResponse.Success old = ControlResponse.success(
                List.of("4096 8192", "40960 4096"),
                new ResponseData.Changed(
                        "vol",
                        "snap",
                        1 << 20,
                        12288,
                        List.of(new ResponseData.Extent(4096, 8192), new ResponseData.Extent(40960, 4096))));
        Recorded read = new Recorded();
        assertNull(read(old.toJson() + "\n", read));
        assertEquals(List.of("start vol snap 1048576", "4096 8192", "40960 4096", "end 12288"), read.seen);
    }
}
