package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.table.TableParser;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A COW device that works for its first MiB and fails past it (a table of {@code linear} then
 * {@code error}, stacked as {@code dm:cowdev}): activation reads only what the kernel's does
 * (the header and area 0), so it succeeds; only a write needing the failing region invalidates.
 */
class PartlyFailingCowTest {
    private static final int CHUNK_SECTORS = 8;
    /** COW chunks 2..255 lie in the first MiB: 254 exceptions fit, the 255th needs chunk 256. */
    private static final int EXCEPTIONS_IN_FIRST_MIB = (1 << 20) / (CHUNK_SECTORS * 512) - 2;

    @TempDir
    Path dir;

    private static void createCowDevice(SnapshotEngine e) throws Exception {
        e.dm.create("cowdev", null, TableParser.parse("0 2048 linear " + e.cow + " 0\n2048 6144 error"));
    }

    private static void activate(SnapshotEngine e) throws Exception {
        e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
        e.dm.get("origin").suspend();
        e.dm.create("snap", null, TableParser.parse("0 16384 snapshot " + e.base + " dm:cowdev P " + CHUNK_SECTORS));
        e.dm.get("origin").resume();
    }

    @Test
    void aFreshCowActivatesAndOnlyTheExceptionPastTheFirstMibInvalidates() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            createCowDevice(e);
            activate(e);
            assertEquals("0 16384 snapshot 16/8192 16", e.status("snap", false));
            for (int chunk = 0; chunk < EXCEPTIONS_IN_FIRST_MIB; chunk++) {
                e.write("origin", (long) chunk * CHUNK_SECTORS, CHUNK_SECTORS, 0x5a);
            }
            assertEquals(
                    "0 16384 snapshot " + (2 + EXCEPTIONS_IN_FIRST_MIB) * CHUNK_SECTORS + "/8192 16",
                    e.status("snap", false));
            assertEquals(SnapshotEngine.original(8), e.readByte("snap", 8));
            e.write("origin", (long) EXCEPTIONS_IN_FIRST_MIB * CHUNK_SECTORS, CHUNK_SECTORS, 0x5a);
            assertEquals("0 16384 snapshot Invalid", e.status("snap", false));
        }
    }

    @Test
    void aCowWithExceptionsInAreaZeroActivatesWithThem() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            // Three exceptions made on the plain COW file, then the snapshot goes away.
            e.createOriginAndSnapshot("P", CHUNK_SECTORS);
            for (int chunk = 0; chunk < 3; chunk++) {
                e.write("origin", (long) chunk * CHUNK_SECTORS, CHUNK_SECTORS, 0x66);
            }
            e.dm.remove("snap", false);
            e.dm.remove("origin", false);
            createCowDevice(e);
            activate(e);
            assertEquals("0 16384 snapshot " + (2 + 3) * CHUNK_SECTORS + "/8192 16", e.status("snap", false));
            for (int chunk = 0; chunk < 4; chunk++) {
                long sector = (long) chunk * CHUNK_SECTORS + 1;
                assertEquals(SnapshotEngine.original(sector), e.readByte("snap", sector), "sector " + sector);
            }
        }
    }
}
