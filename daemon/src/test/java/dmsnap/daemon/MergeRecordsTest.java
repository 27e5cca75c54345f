package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The merge flows' records keep the on-disk format state directories already hold, so they restore. */
class MergeRecordsTest {
    /** A record as the daemon wrote it before MergeRecords existed (the date line aside). */
    private static final String WRITTEN = """
            #dmsnap merge of snap into vol
            #Fri Dec 04 18:44:40 UTC 2026
            cow=/var/lib/dmsnap/snap.cow
            origin=vol
            snapshot=snap
            started=true
            totalBytes=1048576
            """;

    @TempDir
    Path dir;

    private StateStore state;
    private MergeRecords records;

    @BeforeEach
    void setUp() throws Exception {
        state = new StateStore(dir.resolve("state"));
        records = new MergeRecords(state);
    }

    @AfterEach
    void tearDown() throws Exception {
        state.close();
    }

    private static List<String> withoutDate(String text) {
        List<String> lines = text.lines().toList();
        return List.of(lines.getFirst(), String.join("\n", lines.subList(2, lines.size())));
    }

    @Test
    void writesTheFormatEarlierDaemonsWrote() throws Exception {
        records.write(new MergeRecords.Entry("vol", "snap", "/var/lib/dmsnap/snap.cow", true, 1048576));
        String text = Files.readString(dir.resolve("state/vol.merge"), StandardCharsets.ISO_8859_1);
        assertEquals(withoutDate(WRITTEN), withoutDate(text));
    }

    @Test
    void readsRecordsEarlierDaemonsWrote() throws Exception {
        Files.writeString(dir.resolve("state/vol.merge"), WRITTEN, StandardCharsets.ISO_8859_1);
        Files.writeString(
                dir.resolve("state/data.merge"), "origin=data\nsnapshot=s\ncow=/c\n", StandardCharsets.ISO_8859_1);
        List<MergeRecords.Entry> all = records.loadAll().stream()
                .sorted(java.util.Comparator.comparing(MergeRecords.Entry::origin))
                .toList();
        assertEquals(
                List.of(
                        new MergeRecords.Entry("data", "s", "/c", false, 0),
                        new MergeRecords.Entry("vol", "snap", "/var/lib/dmsnap/snap.cow", true, 1048576)),
                all);
    }

    @Test
    void deleteDropsTheRecordAndNoStateDirectoryRecordsNothing() throws Exception {
        records.write(new MergeRecords.Entry("vol", "snap", "/c", false, 0));
        records.delete("vol");
        assertTrue(Files.notExists(dir.resolve("state/vol.merge")));
        records.delete("vol"); // nothing there: no error
        MergeRecords none = new MergeRecords(null);
        none.write(new MergeRecords.Entry("vol", "snap", "/c", false, 0));
        none.delete("vol");
        assertEquals(List.of(), none.loadAll());
    }
}
