package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.TargetTypes;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@code changed} request: the extents a device changed since a snapshot, and its refusals. */
class ControlChangedTest {
    @TempDir
    Path dir;

    private ChunkCopier copier;
    private DeviceManager dm;
    private ControlHandler handler;

    @BeforeEach
    void setUp() throws Exception {
        copier = new ChunkCopier(2, 1 << 20);
        dm = new DeviceManager(
                SnapshotTargets.register(TargetTypes.withBasicTargets(), new Registry(), copier), new BackingDevices());
        handler = new ControlHandler(dm, "test", dmsnap.device.DeviceRecorder.NONE);
        Path base = dir.resolve("base.img");
        Path cow = dir.resolve("cow.img");
        Files.write(base, new byte[1 << 20]);
        Files.write(cow, new byte[1 << 20]);
        dm.create("vol", null, TableParser.parse("0 2048 snapshot-origin " + base));
        dm.get("vol").suspend();
        dm.create("snap", null, TableParser.parse("0 2048 snapshot " + base + " " + cow + " P 8"));
        dm.get("vol").resume();
        dm.create("z", null, TableParser.parse("0 2048 zero"));
    }

    @AfterEach
    void tearDown() throws Exception {
        for (MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        copier.close();
    }

    private ControlResponse.Failure failure(ControlRequest r) {
        return assertInstanceOf(ControlResponse.Failure.class, handler.handle(r));
    }

    /** Writes a chunk (8 sectors) of vol at each of {@code chunks}: each copied out to snap. */
    private void writeChunks(long... chunks) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(4096, 4096);
            for (long chunk : chunks) {
                dm.get("vol").submit(IoRequest.write(chunk * 8, data, false));
            }
        }
    }

    /** A walk's output, one string each; at its first extent it calls {@code first}. */
    private record Recording(List<String> seen, java.util.concurrent.Callable<?> first) implements ChangedExtents {
        Recording(java.util.concurrent.Callable<?> first) {
            this(java.util.Collections.synchronizedList(new java.util.ArrayList<>()), first);
        }

        @Override
        public void start(String device, String since, long sizeBytes) {
            seen.add("start " + device + " " + since + " " + sizeBytes);
        }

        @Override
        public void extent(long offsetBytes, long lengthBytes) throws java.io.IOException {
            seen.add(offsetBytes + " " + lengthBytes);
            if (seen.size() == 2) {
                try {
                    first.call();
                } catch (Exception e) {
                    throw new java.io.IOException(e);
                }
            }
        }

        @Override
        public void end(long changedBytes) {
            seen.add("end " + changedBytes);
        }
    }

    /**
     * A long answer goes out in parts, each one pass through the device's gate, handed on outside
     * it: a client reading slowly does not hold up a suspend of the device, and the walk's next
     * pass waits for the resume as I/O does.
     */
    @Test
    @org.junit.jupiter.api.Timeout(60) // a walk that held the gate while handing on would hang the suspend
    void aLongAnswerGoesOutInPartsOutsideTheDevicesGate() throws Exception {
        writeChunks(1, 3, 5, 7);
        MappedDevice vol = dm.get("vol");
        java.util.concurrent.CountDownLatch reached = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
        Recording out = new Recording(() -> {
            reached.countDown();
            go.await();
            return null;
        });
        try (var pool = java.util.concurrent.Executors.newSingleThreadExecutor()) {
            var walk = pool.submit(() -> {
                ChangedWalk.walk(vol, "snap", out, 2);
                return null;
            });
            reached.await();
            vol.suspend(); // the walk is between two passes: nothing to drain
            go.countDown();
            while (vol.parkedIo() == 0) {
                Thread.onSpinWait(); // the next pass waits for the resume
            }
            assertEquals(false, walk.isDone());
            vol.resume();
            walk.get();
        }
        assertEquals(
                List.of("start vol snap 1048576", "4096 4096", "12288 4096", "20480 4096", "28672 4096", "end 16384"),
                out.seen());
    }

    @Test
    void aBaselineRemovedBetweenPartsEndsTheWalkAfterTheExtentsFoundUntilThen() throws Exception {
        writeChunks(1, 3, 5);
        Recording out = new Recording(() -> {
            dm.remove("snap", false);
            return null;
        });
        java.io.IOException gone = org.junit.jupiter.api.Assertions.assertThrows(
                java.io.IOException.class, () -> ChangedWalk.walk(dm.get("vol"), "snap", out, 2));
        assertEquals("no valid snapshot snap of this origin to compare with", gone.getMessage());
        assertEquals(List.of("start vol snap 1048576", "4096 4096"), out.seen());
    }

    @Test
    void theChangedExtentsAreListedAndTheRefusalsSayWhy() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(8192, 4096);
            dm.get("vol").submit(IoRequest.write(8, data, false)); // chunks 1 and 2
            dm.get("vol").submit(IoRequest.write(80, data.asSlice(0, 4096), false)); // chunk 10
        }
        ControlResponse.Success ok =
                assertInstanceOf(ControlResponse.Success.class, handler.handle(ControlRequest.changed("vol", "snap")));
        assertEquals(List.of("4096 8192", "40960 4096"), ok.lines());
        assertEquals(12288, ok.data().get("changedBytes").asLong());
        assertEquals(1 << 20, ok.data().get("size").asLong());

        ControlResponse.Failure unknown = failure(ControlRequest.changed("vol", "nope"));
        assertEquals(Errno.EINVAL, unknown.errno());
        assertEquals(
                "vol cannot be compared with nope: not a valid snapshot of its origin (these are: snap)",
                unknown.reason());
        assertEquals(
                "z cannot be compared with snap: it is no origin or snapshot with another valid snapshot",
                failure(ControlRequest.changed("z", "snap")).reason());
        assertEquals(
                "changed needs the snapshot to compare with",
                failure(ControlRequest.changed("vol", null)).reason());
        assertEquals(
                Errno.ENXIO, failure(ControlRequest.changed("gone", "snap")).errno());
    }
}
