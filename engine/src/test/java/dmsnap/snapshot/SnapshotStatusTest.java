package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.device.StatusLine;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.table.TableLine;
import dmsnap.table.TableParser;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.StatusText;
import dmsnap.target.StatusType;
import dmsnap.target.TargetStatus;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The typed status of the snapshot targets (spec 6): each state as a {@link SnapshotStatus}
 * value, the table as the targets print it, and the dmsetup strings rendered from them equal to
 * the kernel's.
 */
class SnapshotStatusTest {
    private static final long BASE = 8 << 20; // 16384 sectors
    private static final long COW = 4 << 20; // 8192 sectors
    private static final long SMALL_COW = 4 * 4096; // header, area 0 and two data chunks of 8 sectors

    @TempDir
    Path dir;

    /** The typed status of a device's single line, after checking its rendering is the status line. */
    private static TargetStatus status(SnapshotEngine e, String device) throws Exception {
        List<StatusLine> lines = e.dm.get(device).status(false);
        assertEquals(1, lines.size());
        StatusLine l = lines.getFirst();
        assertEquals(
                e.status(device, false),
                StatusText.infoLine(l.startSector(), l.lengthSectors(), l.targetType(), l.status()));
        return l.status();
    }

    /** A device's single line as table status prints it, after checking its rendering is the table line. */
    private static TableLine printed(SnapshotEngine e, String device) throws Exception {
        List<TableLine> lines = e.dm.get(device).printedTable(false).lines();
        assertEquals(1, lines.size());
        assertEquals(e.table(device, false), StatusText.tableLine(lines.getFirst()));
        return lines.getFirst();
    }

    private static List<String> args(SnapshotEngine e, String... store) throws IOException {
        var a = new java.util.ArrayList<>(
                List.of(e.base.toRealPath().toString(), e.cow.toRealPath().toString()));
        a.addAll(List.of(store));
        return a;
    }

    @Test
    void aValidSnapshotShowsItsCowUsageAndTheOriginShowsNothing() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            assertEquals(new SnapshotStatus.Usage(16, 8192, 16), status(e, "snap"));
            e.write("origin", 0, 16, 0x11); // two chunks copied out
            SnapshotStatus.Usage usage = (SnapshotStatus.Usage) status(e, "snap");
            assertEquals(new SnapshotStatus.Usage(32, 8192, 16), usage);
            assertEquals(16, usage.dataSectors());
            assertEquals("0 16384 snapshot 32/8192 16", e.status("snap", false));
            assertEquals(new TableLine(0, 16384, "snapshot", args(e, "P", "8")), printed(e, "snap"));

            assertEquals(TargetStatus.EMPTY, status(e, "origin"));
            assertEquals("0 16384 snapshot-origin ", e.status("origin", false), "the space before an empty status");
            assertEquals(
                    new TableLine(
                            0,
                            16384,
                            "snapshot-origin",
                            List.of(e.base.toRealPath().toString())),
                    printed(e, "origin"));
            assertEquals("0 16384 snapshot-origin " + e.base.toRealPath(), e.table("origin", false));
        }
    }

    @Test
    void theTableShowsTheStoreTypeAndFeaturesAsTheKernelPrintsThem() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin " + e.base));
            e.dm.get("origin").suspend();
            e.dm.create(
                    "po",
                    null,
                    TableParser.parse(e.snapshotTable("po", 8) + " 2 discard_passdown_origin discard_zeroes_cow"));
            e.dm.get("origin").resume();
            assertEquals(
                    new TableLine(
                            0,
                            16384,
                            "snapshot",
                            args(e, "PO", "8", "2", "discard_zeroes_cow", "discard_passdown_origin")),
                    printed(e, "po"));
            assertEquals(new SnapshotStatus.Usage(16, 8192, 16), status(e, "po"));
            e.dm.remove("po", false);

            e.dm.get("origin").suspend();
            e.dm.create("n", null, TableParser.parse(e.snapshotTable("N", 8) + " 1 discard_zeroes_cow"));
            e.dm.get("origin").resume();
            assertEquals(
                    new TableLine(0, 16384, "snapshot", args(e, "N", "8", "1", "discard_zeroes_cow")), printed(e, "n"));
            assertEquals(new SnapshotStatus.Usage(0, 8192, 0), status(e, "n"));
            assertEquals("0 16384 snapshot 0/8192 0", e.status("n", false));
        }
    }

    @Test
    void aFullPersistentCowMakesTheSnapshotInvalid() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, SMALL_COW)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 24, 0x11); // three chunks: the third has no room
            assertEquals(new SnapshotStatus.Invalid(), status(e, "snap"));
            assertEquals("0 16384 snapshot Invalid", e.status("snap", false));
            assertEquals(
                    new TableLine(0, 16384, "snapshot", args(e, "P", "8")),
                    printed(e, "snap"),
                    "the table does not change");
        }
    }

    @Test
    void aFullPoCowOverflowsAndInvalidBeatsOverflow() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, SMALL_COW)) {
            e.createOriginAndSnapshot("PO", 8);
            e.write("snap", 0, 16, 0x21);
            assertThrows(IOException.class, () -> e.write("snap", 16, 8, 0x22));
            assertEquals(new SnapshotStatus.Overflow(), status(e, "snap"));
            assertEquals("0 16384 snapshot Overflow", e.status("snap", false));
            e.write("origin", 800, 8, 0x23); // needs room for a copy: invalid
            assertEquals(new SnapshotStatus.Invalid(), status(e, "snap"));
        }
    }

    @Test
    void aFailedMergeStepShowsMergeFailed() throws Exception {
        SnapshotMergeTest.Faults faults = new SnapshotMergeTest.Faults();
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW, faults.devices())) {
            e.createOriginAndSnapshot("P", 8);
            for (int c = 0; c < 40; c += 2) {
                e.write("origin", c * 8L, 8, c + 1);
            }
            FaultyDevice cow = faults.get("cow.img");
            int[] reads = {0};
            AtomicBoolean armed = new AtomicBoolean(true);
            cow.failWhen(r -> r.op() == FaultyDevice.Op.READ && armed.get() && ++reads[0] == 5);
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            armed.set(false);
            assertEquals(new SnapshotStatus.MergeFailed(), status(e, "origin"));
            assertEquals("0 16384 snapshot-merge Merge failed", e.status("origin", false));
            assertEquals(new TableLine(0, 16384, "snapshot-merge", args(e, "P", "8")), printed(e, "origin"));
        }
    }

    @Test
    void theMergingDeviceShowsTheMergeProgressDownToTheMetadata() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, BASE, COW)) {
            e.createOriginAndSnapshot("P", 8);
            e.write("origin", 0, 32, 0x11);
            e.write("origin", 800, 8, 0x12);
            assertEquals(new SnapshotStatus.Usage(56, 8192, 16), status(e, "snap"));
            e.dm.load("origin", TableParser.parse(e.mergeTable("P", 8)));
            List<StatusLine> inactive = e.dm.get("origin").status(true);
            assertEquals(
                    List.of(new StatusLine(0, 16384, "snapshot-merge", new SnapshotStatus.Usage(0, 8192, 0))),
                    inactive,
                    "a handover destination before its resume: nothing read");
            assertEquals(
                    List.of("0 16384 snapshot-merge 0/8192 0"),
                    e.dm.get("origin").statusLines(StatusType.INFO, true));
            assertEquals(
                    List.of(new TableLine(0, 16384, "snapshot-merge", args(e, "P", "0"))),
                    e.dm.get("origin").printedTable(true).lines());
            e.dm.get("origin").suspend();
            e.dm.get("snap").suspend();
            e.dm.get("origin").resume();
            e.dm.get("snap").resume();
            e.dm.remove("snap", false);
            awaitMergeStopped(e);
            SnapshotStatus.Usage done = (SnapshotStatus.Usage) status(e, "origin");
            assertEquals(new SnapshotStatus.Usage(16, 8192, 16), done);
            assertEquals(0, done.dataSectors(), "nothing left to merge");
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
            e.write("origin", 8, 8, 0x13); // I/O goes on; nothing new on the COW
            assertEquals(done, status(e, "origin"));
        }
    }
}
