package dmsnap.target;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.device.StatusLine;
import dmsnap.table.TableLine;
import dmsnap.table.TableParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The dmsetup rendering of typed status (spec 6), and the status of the simple targets. */
class StatusTextTest {
    @TempDir
    Path dir;

    @Test
    void eachSnapshotStatusRendersAsTheKernelPrintsIt() {
        assertEquals("16/8192 16", StatusText.info(new SnapshotStatus.Usage(16, 8192, 16)));
        assertEquals("0/8192 0", StatusText.info(new SnapshotStatus.Usage(0, 8192, 0)));
        assertEquals("Invalid", StatusText.info(new SnapshotStatus.Invalid()));
        assertEquals("Merge failed", StatusText.info(new SnapshotStatus.MergeFailed()));
        assertEquals("Overflow", StatusText.info(new SnapshotStatus.Overflow()));
        assertEquals("", StatusText.info(TargetStatus.EMPTY));
        assertEquals(96, new SnapshotStatus.Usage(112, 8192, 16).dataSectors());
    }

    @Test
    void linesKeepTheSpaceBeforeAnEmptyStatus() {
        assertEquals(
                "0 2097152 snapshot 16/204800 16",
                StatusText.infoLine(0, 2097152, "snapshot", new SnapshotStatus.Usage(16, 204800, 16)));
        assertEquals("0 100 zero ", StatusText.infoLine(0, 100, "zero", TargetStatus.EMPTY));
        assertEquals("100 50 error ", StatusText.tableLine(new TableLine(100, 50, "error", List.of())));
        assertEquals(
                "0 16384 snapshot 254:11 254:12 PO 8 2 discard_zeroes_cow discard_passdown_origin",
                StatusText.tableLine(new TableLine(
                        0,
                        16384,
                        "snapshot",
                        List.of("254:11", "254:12", "PO", "8", "2", "discard_zeroes_cow", "discard_passdown_origin"))));
    }

    @Test
    void linearZeroAndErrorReportNothingAndPrintTheirArguments() throws Exception {
        Path file = Files.write(dir.resolve("disk.img"), new byte[64 << 10]);
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try {
            dm.create(
                    "d", null, TableParser.parse("0 64 linear " + file + " 16\n64 8 zero\n72 8 error ignored words\n"));
            MappedDevice d = dm.get("d");
            assertEquals(
                    List.of(
                            new StatusLine(0, 64, "linear", TargetStatus.EMPTY),
                            new StatusLine(64, 8, "zero", TargetStatus.EMPTY),
                            new StatusLine(72, 8, "error", TargetStatus.EMPTY)),
                    d.status(false));
            assertEquals(
                    List.of(
                            new TableLine(
                                    0, 64, "linear", List.of(file.toRealPath().toString(), "16")),
                            new TableLine(64, 8, "zero", List.of()),
                            new TableLine(72, 8, "error", List.of())),
                    d.printedTable(false).lines());
            assertEquals(List.of("0 64 linear ", "64 8 zero ", "72 8 error "), d.statusLines(StatusType.INFO, false));
            assertEquals(
                    List.of("0 64 linear " + file.toRealPath() + " 16", "64 8 zero ", "72 8 error "),
                    d.statusLines(StatusType.TABLE, false));
            assertEquals(List.of(), d.status(true), "no inactive table");
            assertEquals(List.of(), d.printedTable(true).lines());
        } finally {
            dm.remove("d", true);
        }
    }
}
