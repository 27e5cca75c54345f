package dmsnap.device;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Mapped devices with the simple targets: tables, I/O routing, suspend/resume, dmsetup views. */
class MappedDeviceTest {
    @TempDir
    Path dir;

    private Arena arena;
    private BackingDevices backing;
    private DeviceManager dm;
    private Path base;

    @BeforeEach
    void setUp() throws IOException {
        arena = Arena.ofShared();
        backing = new BackingDevices();
        dm = new DeviceManager(TargetTypes.withBasicTargets(), backing);
        base = dir.resolve("base.img");
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(1 << 20);
            for (int s = 0; s < 2048; s++) {
                f.seek(s * 512L);
                f.write(s & 0xff);
            }
        }
    }

    @AfterEach
    void tearDown() throws DmException {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        arena.close();
    }

    private MemorySegment buffer(long sectors) {
        return arena.allocate(sectors << 9, 4096);
    }

    @Test
    void linearZeroAndErrorTargetsRouteIoAcrossLines() throws Exception {
        MappedDevice d = dm.create(
                "mix",
                null,
                TableParser.parse(
                        "0 100 linear " + base + " 50\n100 20 zero\n120 8 error\n128 64 linear " + base + " 0\n"));
        MemorySegment b = buffer(120);
        d.submit(IoRequest.read(0, b));
        assertEquals(50, b.get(JAVA_BYTE, 0), "sector 0 is base sector 50");
        assertEquals((byte) 149, b.get(JAVA_BYTE, 99 * 512L));
        assertEquals(0, b.get(JAVA_BYTE, 100 * 512L), "zero target");
        IOException e = assertThrows(IOException.class, () -> d.submit(IoRequest.read(110, buffer(20))));
        assertTrue(e.getMessage().contains("error target"), e.getMessage());
        MemorySegment tail = buffer(64);
        d.submit(IoRequest.read(128, tail));
        assertEquals(3, tail.get(JAVA_BYTE, 3 * 512L));
        d.submit(IoRequest.write(100, buffer(20).fill((byte) 9), false)); // dropped by zero
        // io_err_ctr leaves num_flush_bios at 0: dm core sends the error target no flush, so a
        // flush of this table succeeds (the linear lines get it).
        d.submit(IoRequest.flush());
        assertEquals(
                List.of("0 100 linear ", "100 20 zero ", "120 8 error ", "128 64 linear "),
                d.statusLines(StatusType.INFO, false));
        assertEquals(
                List.of(
                        "0 100 linear " + base.toRealPath() + " 50",
                        "100 20 zero ",
                        "120 8 error ",
                        "128 64 linear " + base.toRealPath() + " 0"),
                d.statusLines(StatusType.TABLE, false));
        assertEquals(1, backing.openCount(), "one base file, opened once for both linear lines");
    }

    @Test
    void ioIsCountedWhenItCompletesAsTheKernelsDiskStatsCountIt() throws Exception {
        MappedDevice d = dm.create("mix", null, TableParser.parse("0 64 zero\n64 8 error\n"));
        assertEquals(new IoStats.Totals(0, 0, 0, 0, 0, 0, 0, 0, 0), d.ioStats().totals());
        d.submit(IoRequest.read(0, buffer(8)));
        d.submit(IoRequest.read(8, buffer(1)));
        d.submit(IoRequest.write(0, buffer(2), true));
        d.submit(new IoRequest(IoRequest.Op.WRITE_ZEROES, 16, 8, null, false));
        d.submit(new IoRequest(IoRequest.Op.DISCARD, 32, 16, null, false));
        assertEquals(
                new IoStats.Totals(2, 9 * 512, 2, 10 * 512, 0, 1, 16 * 512, 0, 0),
                d.ioStats().totals());
        // Failed requests count too, and as errors: the error target, a discard reaching it, the
        // end. A flush does not reach the error target (it gets none, as in the kernel) and succeeds.
        assertThrows(IOException.class, () -> d.submit(IoRequest.read(60, buffer(8))));
        assertThrows(IOException.class, () -> d.submit(new IoRequest(IoRequest.Op.DISCARD, 64, 8, null, false)));
        assertThrows(IOException.class, () -> d.submit(IoRequest.write(72, buffer(1), false)));
        d.submit(IoRequest.flush());
        assertEquals(
                new IoStats.Totals(3, 17 * 512, 3, 11 * 512, 1, 2, 24 * 512, 3, 0),
                d.ioStats().totals());
        // A stacked device's I/O is counted by both devices, as dm-N stats are.
        MappedDevice upper = dm.create("upper", null, TableParser.parse("0 8 linear dm:mix 0"));
        upper.submit(IoRequest.read(0, buffer(8)));
        assertEquals(1, upper.ioStats().totals().reads());
        assertEquals(4, d.ioStats().totals().reads());
    }

    @Test
    void aReadThatMustNotWaitIsServedOnlyWhereNothingWouldWait() throws Exception {
        MappedDevice d =
                dm.create("mix", null, TableParser.parse("0 64 zero\n64 64 linear " + base + " 0\n128 8 error\n"));
        MemorySegment b = buffer(64).fill((byte) 1);
        assertTrue(d.readIfCached(IoRequest.read(0, b)), "zeroes never wait");
        assertEquals(0, b.get(JAVA_BYTE, 63 * 512L));
        assertFalse(
                d.readIfCached(IoRequest.read(32, buffer(64))), "the linear line reads with O_DIRECT: it would wait");
        assertThrows(IllegalArgumentException.class, () -> d.readIfCached(IoRequest.write(0, buffer(1), false)));
        d.suspend();
        assertFalse(d.readIfCached(IoRequest.read(0, buffer(8))), "suspended: it would wait");
        d.resume();
        assertEquals(1, d.ioStats().totals().reads(), "a read that would wait is not counted");
        assertEquals(1, d.ioStats().totals().cachedReads());
        // A read beyond the end fails as a submitted one would; the error target cannot tell (it would wait).
        assertFalse(d.readIfCached(IoRequest.read(128, buffer(8))));
        assertThrows(IOException.class, () -> d.readIfCached(IoRequest.read(130, buffer(8))));
        assertEquals(1, d.ioStats().totals().errors());
        // Through a stacked device: the lower table's answer.
        MappedDevice upper = dm.create("upper", null, TableParser.parse("0 64 linear dm:mix 0"));
        assertTrue(upper.readIfCached(IoRequest.read(0, buffer(8))));
        assertEquals(1, upper.ioStats().totals().cachedReads());
    }

    @Test
    void writesGoThroughAndBeyondTheEndIsRefused() throws Exception {
        MappedDevice d = dm.create("lin", null, TableParser.parse("0 64 linear " + base + " 8"));
        d.submit(IoRequest.write(0, buffer(1).fill((byte) 0x7e), true));
        assertEquals(0x7e, Files.readAllBytes(base)[8 * 512]);
        assertThrows(IOException.class, () -> d.submit(IoRequest.read(60, buffer(8))));
    }

    @Test
    void loadFailuresChangeNothingAndNameTheReason() throws Exception {
        MappedDevice d = dm.create("lin", null, TableParser.parse("0 64 linear " + base + " 0"));
        TableLoadException count =
                assertThrows(TableLoadException.class, () -> dm.load("lin", TableParser.parse("0 64 linear " + base)));
        assertEquals("Invalid argument count", count.getMessage());
        assertEquals(
                "Invalid device sector",
                assertThrows(
                                TableLoadException.class,
                                () -> dm.load("lin", TableParser.parse("0 64 linear " + base + " x")))
                        .getMessage());
        assertTrue(assertThrows(
                        TableLoadException.class,
                        () -> dm.load("lin", TableParser.parse("0 64 linear " + dir.resolve("nope") + " 0")))
                .getMessage()
                .startsWith("Device lookup failed"));
        assertTrue(assertThrows(
                        TableLoadException.class,
                        () -> dm.load("lin", TableParser.parse("0 4096 linear " + base + " 0")))
                .getMessage()
                .contains("too small for target"));
        assertEquals(
                "unknown target type",
                assertThrows(TableLoadException.class, () -> dm.load("lin", TableParser.parse("0 64 nosuch")))
                        .getMessage());
        assertEquals(
                "No arguments required",
                assertThrows(TableLoadException.class, () -> dm.load("lin", TableParser.parse("0 64 zero 1")))
                        .getMessage());
        assertEquals("LIVE", d.info().tablesPresent());
        assertEquals(1, backing.openCount());
    }

    /**
     * Found by TableFuzzTest (seed -3160365047834691604, case 817): a linear offset past 2^63 - 1
     * made a NumberFormatException escape the load, and create left the device behind.
     */
    @Test
    void aLinearOffsetBeyondALongIsRefusedAndCreateLeavesNothing() {
        for (String offset : new String[] {"9223372036854775808", "9999999999999999999"}) {
            TableLoadException e = assertThrows(
                    TableLoadException.class,
                    () -> dm.create("lin", null, TableParser.parse("0 64 linear " + base + " " + offset)));
            assertEquals("Invalid device sector", e.getMessage());
            assertEquals(List.of(), dm.list());
            assertEquals(0, backing.openCount());
        }
    }

    /**
     * Found by TableFuzzTest (seed 5501169649150918072, case 671): a linear offset near 2^63
     * overflowed the size check and the table loaded; the kernel's device_area_is_invalid refuses
     * a start at or past the device's end.
     */
    @Test
    void aLinearOffsetWhoseEndOverflowsIsTooSmallForTheTarget() {
        TableLoadException e = assertThrows(
                TableLoadException.class,
                () -> dm.create("lin", null, TableParser.parse("0 423 linear " + base + " 9223372036854775807")));
        assertTrue(
                e.getMessage().contains("too small for target: start=9223372036854775807, len=423, dev_size=2048"),
                e.getMessage());
        assertEquals(List.of(), dm.list());
        assertEquals(0, backing.openCount());
    }

    @Test
    void reloadSwapsTablesAtResumeAndDestroysTheOldOne() throws Exception {
        MappedDevice d = dm.create("dev", null, TableParser.parse("0 64 zero"));
        d.load(TableParser.parse("0 64 linear " + base + " 0"), dm.targetTypes(), backing);
        assertEquals("LIVE & INACTIVE", d.info().tablesPresent());
        assertEquals(List.of("0 64 linear " + base.toRealPath() + " 0"), d.statusLines(StatusType.TABLE, true));
        MemorySegment b = buffer(1);
        d.submit(IoRequest.read(5, b));
        assertEquals(0, b.get(JAVA_BYTE, 0), "still the zero table");
        d.resume();
        d.submit(IoRequest.read(5, b));
        assertEquals(5, b.get(JAVA_BYTE, 0));
        assertEquals("LIVE", d.info().tablesPresent());
        d.load(TableParser.parse("0 64 zero"), dm.targetTypes(), backing);
        d.clear();
        assertEquals("LIVE", d.info().tablesPresent());
    }

    @Test
    void suspendParksIoUntilResumeWithoutErrors() throws Exception {
        MappedDevice d = dm.create("dev", null, TableParser.parse("0 64 linear " + base + " 0"));
        d.suspend();
        assertTrue(d.info().suspended());
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<Byte> parked = pool.submit(() -> {
                MemorySegment b = buffer(1);
                d.submit(IoRequest.read(7, b));
                return b.get(JAVA_BYTE, 0);
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (d.parkedIo() == 0) { // waits for the I/O to reach the closed gate
                assertTrue(System.nanoTime() < deadline, "the I/O did not reach the gate within 60 s");
                Thread.sleep(1);
            }
            assertFalse(parked.isDone(), "I/O waits while the device is suspended");
            assertEquals(1, d.parkedIo());
            d.resume();
            assertEquals((byte) 7, parked.get(60, TimeUnit.SECONDS).byteValue());
            assertEquals(0, d.parkedIo());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void devicesNamesAndMinors() throws Exception {
        MappedDevice a = dm.create("a", "uuid-a", null);
        assertEquals("None", a.info().tablesPresent());
        assertEquals(
                Errno.EBUSY,
                assertThrows(DmException.class, () -> dm.create("a", null, null))
                        .errno());
        assertEquals(
                Errno.EINVAL,
                assertThrows(DmException.class, () -> dm.create("x/y", null, null))
                        .errno());
        assertEquals(
                Errno.EINVAL,
                assertThrows(DmException.class, () -> dm.create("n".repeat(128), null, null))
                        .errno());
        assertEquals(
                Errno.ENXIO,
                assertThrows(DmException.class, () -> dm.remove("nope", false)).errno());
        MappedDevice b = dm.create("b", null, null);
        assertEquals(a.minor() + 1, b.minor());
        dm.remove("a", false);
        MappedDevice c = dm.create("c", null, null);
        assertEquals(a.minor(), c.minor(), "the lowest free minor is reused");
        dm.rename("c", "c2");
        assertNull(dm.find("c"));
        assertEquals(c, dm.get("c2"));
        c.open();
        assertEquals(
                Errno.EBUSY,
                assertThrows(DmException.class, () -> dm.remove("c2", false)).errno());
        dm.remove("c2", true);
        String info = b.info().dmsetupText();
        assertTrue(
                info.startsWith(
                        "Name:              b\nState:             ACTIVE\nRead Ahead:        256\n"
                                + "Tables present:    None\nOpen count:        0\nEvent number:      0\nMajor, minor:      253, "),
                info);
    }

    @Test
    void aFileAndASymlinkToItAreOneDevice() throws Exception {
        Path link = dir.resolve("link.img");
        Files.createSymbolicLink(link, base);
        try (BackingDevices.Handle h1 = backing.open(base.toString(), BackingDevices.Access.WRITE);
                BackingDevices.Handle h2 = backing.open(link.toString(), BackingDevices.Access.WRITE)) {
            assertEquals(h1.identity(), h2.identity());
            assertEquals(1, backing.openCount());
            assertEquals(base.toRealPath().toString(), h2.canonicalName());
        }
        assertEquals(0, backing.openCount());
    }
}
