package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Checklist 10-13 and 46-50: feature arguments and discards on snapshot and origin. */
class DiscardTest {
    @TempDir
    Path dir;

    private static IoRequest discard(long sector, long sectors) {
        return new IoRequest(IoRequest.Op.DISCARD, sector, sectors, null, false);
    }

    private static void setUp(SnapshotEngine e, String features) throws Exception {
        e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
        e.dm.get("origin").suspend();
        e.dm.create("snap", null, TableParser.parse(e.snapshotTable("P", 8) + features));
        e.dm.get("origin").resume();
    }

    @Test
    void withoutFeaturesDiscardsFailOnBothDevices() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            setUp(e, "");
            assertThrows(IOException.class, () -> e.dm.get("snap").submit(discard(0, 8)));
            assertThrows(IOException.class, () -> e.dm.get("origin").submit(discard(0, 8)));
            e.dm.get("snap").submit(IoRequest.flush());
        }
    }

    @Test
    void discardZeroesCowZeroesWholeChunksThatHaveAnExceptionAndNothingElse() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            setUp(e, " 1 DISCARD_ZEROES_COW");
            assertEquals(
                    " 1 discard_zeroes_cow",
                    e.table("snap", false).substring(e.table("snap", false).indexOf(" P 8") + 4));
            e.write("snap", 0, 8, 0x44);
            e.dm.get("snap").submit(discard(0, 8));
            assertEquals(0, e.readByte("snap", 0), "whole chunk with an exception reads zeroes");
            e.dm.get("snap").submit(discard(64, 8));
            assertEquals(SnapshotEngine.original(64), e.readByte("snap", 64), "no exception: unchanged");
            assertEquals("0 16384 snapshot 24/8192 16", e.status("snap", false), "no allocation for discards");
        }
    }

    @Test
    void passdownReachesTheOriginWithoutCopyingIntoOtherSnapshots() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            setUp(e, " 2 discard_passdown_origin discard_zeroes_cow");
            assertEquals(
                    " 2 discard_zeroes_cow discard_passdown_origin",
                    e.table("snap", false).substring(e.table("snap", false).indexOf(" P 8") + 4));
            e.dm.get("snap").submit(discard(128, 8));
            assertEquals(0, e.readByte("origin", 128), "the origin's blocks were discarded (file hole reads zero)");
            assertEquals("0 16384 snapshot 16/8192 16", e.status("snap", false), "no exception was created");
        }
    }

    @Test
    void featureArgumentsAreCheckedAsTheKernelDoes() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            e.dm.create("s", null, null);
            String base = e.snapshotTable("P", 8);
            assertEquals("Invalid number of feature arguments", loadError(e, base + " 3 a b c"));
            assertEquals("Invalid number of feature arguments", loadError(e, base + " 2 discard_zeroes_cow"));
            // Past 2^63 - 1 (TableFuzzTest found a NumberFormatException escaping for a linear offset).
            assertEquals("Invalid number of feature arguments", loadError(e, base + " 9223372036854775808 a b"));
            assertEquals("Unrecognised feature requested", loadError(e, base + " 1 nope"));
            assertEquals(
                    "discard_passdown_origin feature depends on discard_zeroes_cow",
                    loadError(e, base + " 1 discard_passdown_origin"));
            assertEquals(
                    "requires 4 or more arguments", loadError(e, "0 16384 snapshot " + e.base + " " + e.cow + " P"));
            assertEquals(
                    "COW device cannot be the same as origin device",
                    loadError(e, "0 16384 snapshot " + e.base + " " + e.base + " P 8"));
            assertEquals("Couldn't create exception store", loadError(e, e.snapshotTable("X", 8)));
            assertEquals("Couldn't create exception store", loadError(e, e.snapshotTable("P", 65)));
            assertEquals(
                    "Cannot get COW device",
                    loadError(e, "0 16384 snapshot " + e.base + " " + dir.resolve("none") + " P 8"));
            assertEquals(
                    "Cannot get origin device",
                    loadError(e, "0 16384 snapshot " + dir.resolve("none") + " " + e.cow + " P 8"));
            assertEquals("Chunk size not set", loadError(e, e.snapshotTable("N", 0)));
            assertEquals("origin: incorrect number of arguments", loadError(e, "0 16384 snapshot-origin"));
        }
    }

    private static String loadError(SnapshotEngine e, String table) throws TableLoadException {
        return assertThrows(TableLoadException.class, () -> e.dm.load("s", TableParser.parse(table)))
                .getMessage();
    }
}
