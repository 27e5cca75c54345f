package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.table.TableParser;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Copy-out on origin writes: checklist 38, 42-45, 89 and the shared read for equal chunk sizes. */
class OriginCopyOutTest {
    @TempDir
    Path dir;

    private static String snapTable(SnapshotEngine e, String cowName, long length, int chunk) throws Exception {
        Path cow = e.dir.resolve(cowName);
        if (!Files.exists(cow)) {
            Files.write(cow, new byte[4 << 20]);
        }
        return "0 " + length + " snapshot " + e.base + " " + cow + " P " + chunk;
    }

    @Test
    void snapshotsWithOneChunkSizeShareOneOriginReadAndEachKeepsItsChunk() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            e.dm.get("origin").suspend();
            e.dm.create("a", null, TableParser.parse(snapTable(e, "a.cow", 16384, 8)));
            e.dm.create("b", null, TableParser.parse(snapTable(e, "b.cow", 16384, 8)));
            e.dm.create("c", null, TableParser.parse(snapTable(e, "c.cow", 16384, 16)));
            e.dm.get("origin").resume();
            int before = e.copier.completedCopies();
            e.write("origin", 8, 8, 0x11); // chunk 1 of a and b (8), chunk 0 of c (16)
            assertEquals(2, e.copier.completedCopies() - before, "one copy for a+b, one for c");
            e.write("origin", 8, 8, 0x12); // a second write to the chunk copies nothing
            assertEquals(2, e.copier.completedCopies() - before);
            for (String s : new String[] {"a", "b", "c"}) {
                assertEquals(SnapshotEngine.original(8), e.readByte(s, 8), s);
            }
            assertEquals("0 16384 snapshot 24/8192 16", e.status("a", false));
            assertEquals("0 16384 snapshot 48/8192 32", e.status("c", false));
            // A 16-sector write is split at the 8-sector boundary: a gets two chunks, c one.
            e.write("origin", 32, 16, 0x13);
            assertEquals("0 16384 snapshot 40/8192 16", e.status("a", false));
            assertEquals("0 16384 snapshot 64/8192 32", e.status("c", false));
        }
    }

    @Test
    void neverResumedSnapshotsGetNoCopiesButSuspendedOnesDo() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            e.dm.create("loaded", null, null);
            e.dm.load("loaded", TableParser.parse(snapTable(e, "l.cow", 16384, 8)));
            e.dm.create("live", null, TableParser.parse(snapTable(e, "v.cow", 16384, 8)));
            e.dm.get("origin").suspend();
            e.dm.get("origin").resume();
            e.dm.get("live").suspend();
            e.write("origin", 0, 8, 0x21);
            assertEquals("0 16384 snapshot 16/8192 16", e.status("loaded", true), "no copy before the first resume");
            assertEquals("0 16384 snapshot 24/8192 16", e.status("live", false), "suspended, still copied into");
            e.dm.get("live").resume();
            assertEquals(SnapshotEngine.original(0), e.readByte("live", 0));
        }
    }

    @Test
    void aShorterSnapshotGetsNoCopiesBeyondItsLength() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            e.dm.get("origin").suspend();
            e.dm.create("short", null, TableParser.parse(snapTable(e, "s.cow", 8192, 8)));
            e.dm.get("origin").resume();
            e.write("origin", 9000, 8, 0x31);
            e.write("origin", 96, 8, 0x32);
            assertEquals("0 8192 snapshot 24/8192 16", e.status("short", false));
        }
    }

    @Test
    void theSplitBoundaryChangesOnlyWhenTheOriginResumes() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            // Added without suspending the origin: the origin still does not split writes.
            e.dm.create("small", null, TableParser.parse(snapTable(e, "m.cow", 16384, 8)));
            e.write("origin", 0, 16, 0x41);
            assertEquals("0 16384 snapshot 24/8192 16", e.status("small", false), "only the first chunk was copied");
            assertEquals(0x41, e.readByte("small", 8), "the kernel's documented hazard: chunk 1 was not preserved");
            e.dm.get("origin").suspend();
            e.dm.get("origin").resume();
            e.write("origin", 32, 16, 0x42);
            assertEquals("0 16384 snapshot 40/8192 16", e.status("small", false), "split now: both chunks copied");
        }
    }
}
