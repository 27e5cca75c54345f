package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.MappedDevice;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.table.TableParser;
import dmsnap.target.Allocation;
import dmsnap.target.Change;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Changed blocks from snapshots (issue 19): an older snapshot's exceptions cover what its origin
 * changed since, a newer snapshot's view differs from it where either has an exception, at any
 * mix of chunk sizes; and block status of a snapshot (its exceptions are its own data, the rest
 * its origin's).
 */
class ChangeMapTest {
    private static final long SECTORS = 16384;

    @TempDir
    Path dir;

    private static String snapTable(SnapshotEngine e, String cowName, int chunk) throws Exception {
        Path cow = e.dir.resolve(cowName);
        if (!Files.exists(cow)) {
            Files.write(cow, new byte[4 << 20]);
        }
        return "0 " + SECTORS + " snapshot " + e.base + " " + cow + " P " + chunk;
    }

    private static void addSnapshot(SnapshotEngine e, String name, int chunk) throws Exception {
        e.dm.get("origin").suspend();
        e.dm.create(name, null, TableParser.parse(snapTable(e, name + ".cow", chunk)));
        e.dm.get("origin").resume();
    }

    /** The runs of {@code device} since {@code baseline} over the given range, as Changes. */
    private static List<Change> runs(MappedDevice device, String baseline, long sector, long sectors) throws Exception {
        List<Change> runs = new ArrayList<>();
        device.changedRuns(baseline, sector, sectors, (n, changed) -> runs.add(new Change(n, changed)));
        return runs;
    }

    /** The dirty runs of {@code device} since {@code baseline}, as "start+length" in sectors. */
    private static List<String> dirty(MappedDevice device, String baseline) throws Exception {
        List<String> dirty = new ArrayList<>();
        long at = 0;
        for (Change c : runs(device, baseline, 0, SECTORS)) {
            if (c.changed()) {
                dirty.add(at + "+" + c.sectors());
            }
            at += c.sectors();
        }
        return dirty;
    }

    @Test
    void anOlderSnapshotsExceptionsAreTheChangesAtAnyMixOfChunkSizes() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            e.write("origin", 8, 8, 0x11); // a's chunk 1
            addSnapshot(e, "c", 16);
            e.write("origin", 40, 8, 0x12); // a's chunk 5, c's chunk 2 (sectors 32-47)
            e.write("c", 100, 1, 0x13); // c itself: its chunk 6 (sectors 96-111)
            MappedDevice origin = e.dm.get("origin");
            assertEquals(Set.of("a", "c"), origin.baselines());
            assertEquals(Set.of("c"), e.dm.get("a").baselines(), "not itself");
            assertEquals(List.of("8+8", "40+8"), dirty(origin, "a"));
            assertEquals(
                    List.of("32+16", "96+16"),
                    dirty(origin, "c"),
                    "c's exceptions: the origin's copy-out and c's own write");
            assertEquals(List.of("8+8", "32+16", "96+16"), dirty(e.dm.get("c"), "a"), "a's and c's own exceptions");
            assertEquals(List.of("8+8", "32+16", "96+16"), dirty(e.dm.get("a"), "c"));
            assertEquals(List.of(new Change(4, true)), runs(origin, "a", 10, 4), "never past what was asked");
        }
    }

    /**
     * A newer snapshot's view against an older one: where either has exceptions, as one run where
     * the two tables' exceptions adjoin (the walk goes from one table's run to the other's).
     */
    @Test
    void adjoiningExceptionsOfBothSnapshotsAreOneChangedRun() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            e.write("origin", 48, 8, 0x51); // a's chunk 6 (48-55)
            e.write("origin", 96, 8, 0x52); // a's chunk 12 (96-103)
            addSnapshot(e, "c", 16);
            e.write("c", 32, 1, 0x53); // c's own chunk 2 (32-47), just before a's 48-55
            e.write("c", 104, 1, 0x55); // c's chunk 6 (96-111): a's 96-103 and on
            assertEquals(List.of("32+24", "96+16"), dirty(e.dm.get("c"), "a"));
            assertEquals(List.of("32+24", "96+16"), dirty(e.dm.get("a"), "c"));
            assertEquals(List.of(new Change(8, false), new Change(24, true)), runs(e.dm.get("c"), "a", 24, 32));
        }
    }

    /**
     * Writers allocate exceptions (the table grows and resizes under the walks) while a mapper walks
     * the whole origin: every write answered before a walk began is dirty in that walk, whatever
     * the interleaving.
     */
    @Test
    void aWriteIsDirtyInEveryMapThatStartsAfterItsReply() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 12 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            MappedDevice origin = e.dm.get("origin");
            java.util.concurrent.ConcurrentLinkedQueue<Long> answered =
                    new java.util.concurrent.ConcurrentLinkedQueue<>();
            java.util.concurrent.atomic.AtomicBoolean writing = new java.util.concurrent.atomic.AtomicBoolean(true);
            try (var pool = java.util.concurrent.Executors.newFixedThreadPool(3)) {
                List<java.util.concurrent.Future<?>> writers = new ArrayList<>();
                for (int w = 0; w < 2; w++) {
                    int first = w;
                    writers.add(pool.submit(() -> {
                        for (long chunk = first; chunk < SECTORS / 8; chunk += 2 * 7) {
                            e.write("origin", chunk * 8, 8, 0x40);
                            answered.add(chunk);
                        }
                        return null;
                    }));
                }
                java.util.concurrent.Future<?> mapper = pool.submit(() -> {
                    do {
                        assertDirty(origin, new ArrayList<>(answered));
                    } while (writing.get());
                    return null;
                });
                for (var w : writers) {
                    w.get();
                }
                writing.set(false);
                mapper.get();
            }
            assertEquals(2 * ((SECTORS / 8 + 13) / 14), answered.size());
            assertDirty(origin, new ArrayList<>(answered));
        }
    }

    /** One walk of the whole origin since {@code a}: every chunk of {@code answered} is dirty in it. */
    private static void assertDirty(MappedDevice origin, List<Long> answered) throws Exception {
        java.util.Set<Long> dirty = new java.util.HashSet<>();
        long[] at = {0};
        origin.changedRuns("a", 0, SECTORS, (sectors, changed) -> {
            for (long s = at[0]; changed && s < at[0] + sectors; s += 8) {
                dirty.add(s / 8);
            }
            at[0] += sectors;
            return true;
        });
        assertEquals(SECTORS, at[0], "the walk covers the origin");
        for (long chunk : answered) {
            assertTrue(dirty.contains(chunk), "chunk " + chunk + " answered before the walk began");
        }
    }

    @Test
    void aRemovedSnapshotIsNoLongerABaseline() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            e.write("origin", 0, 8, 0x21);
            e.dm.get("origin").suspend();
            e.dm.remove("a", false, dmsnap.device.DeviceRecorder.NONE);
            e.dm.get("origin").resume();
            MappedDevice origin = e.dm.get("origin");
            assertEquals(Set.of(), origin.baselines());
            IOException gone = assertThrows(IOException.class, () -> runs(origin, "a", 0, SECTORS));
            assertEquals("no valid snapshot a of this origin to compare with", gone.getMessage());
        }
    }

    /** Adjacent runs of one depth as one, so that walks that cut runs differently compare equal. */
    private static List<Allocation> joined(List<Allocation> runs) {
        List<Allocation> joined = new ArrayList<>();
        for (Allocation a : runs) {
            Allocation last = joined.isEmpty() ? null : joined.getLast();
            if (last != null && last.depth() == a.depth()) {
                joined.set(joined.size() - 1, last.withSectors(last.sectors() + a.sectors()));
            } else {
                joined.add(a);
            }
        }
        return joined;
    }

    /**
     * A snapshot's block status in one walk (one cursor over its exceptions, each extent of the
     * origin read once however many gaps between exceptions it lies under) gives what its runs
     * one by one give, over an origin of holes and data, for any range, and stops when told.
     */
    @Test
    void aSnapshotsAllocationWalkIsItsRunsOneByOne() throws Exception {
        Path base = dir.resolve("sparse.img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(SECTORS << 9);
            byte[] data = new byte[64 << 10];
            java.util.Arrays.fill(data, (byte) 7);
            for (long at : new long[] {0, 1 << 20, (3 << 20) + (12 << 10), 6 << 20}) {
                f.seek(at);
                f.write(data);
            }
        }
        Path cow = dir.resolve("cow.img");
        Files.write(cow, new byte[4 << 20]);
        try (SnapshotEngine e = new SnapshotEngine(dir, base, cow, new dmsnap.device.BackingDevices())) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            java.util.Random random = new java.util.Random(19);
            for (int i = 0; i < 80; i++) {
                long sector = random.nextLong(SECTORS / 8) * 8;
                e.write(i % 3 == 0 ? "a" : "origin", sector, 1 + random.nextInt(24), 0x60 + i % 16);
            }
            MappedDevice a = e.dm.get("a");
            long[][] ranges = {{0, SECTORS}, {3, 1000}, {4096, 333}, {2047, 6000}, {SECTORS - 9, 9}};
            for (long[] range : ranges) {
                List<Allocation> walked = new ArrayList<>();
                a.allocationRuns(range[0], range[1], (sectors, depth) -> walked.add(new Allocation(sectors, depth)));
                List<Allocation> oneByOne = new ArrayList<>();
                for (long at = range[0]; at < range[0] + range[1]; ) {
                    Allocation next = a.allocation(at, range[0] + range[1] - at);
                    oneByOne.add(next);
                    at += next.sectors();
                }
                assertEquals(joined(oneByOne), joined(walked), "from " + range[0] + " for " + range[1]);
            }
            List<Allocation> three = new ArrayList<>();
            a.allocationRuns(
                    0, SECTORS, (sectors, depth) -> three.add(new Allocation(sectors, depth)) && three.size() < 3);
            assertEquals(3, three.size(), "stopped when told");
        }
    }

    @Test
    void aSnapshotsExceptionsAreItsOwnDataAndTheRestIsItsOrigins() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("origin", null, TableParser.parse("0 " + SECTORS + " snapshot-origin " + e.base));
            addSnapshot(e, "a", 8);
            e.write("origin", 16, 8, 0x31); // copied out: a's chunk 2
            MappedDevice a = e.dm.get("a");
            assertEquals(new Allocation(16, 2), a.allocation(0, SECTORS), "the origin's data, one layer down");
            assertEquals(new Allocation(8, 1), a.allocation(16, SECTORS - 16), "the exception");
            assertEquals(new Allocation(4, 1), a.allocation(18, 4), "bounded");
            assertEquals(new Allocation(SECTORS - 24, 2), a.allocation(24, SECTORS - 24));
            assertEquals(
                    new Allocation(SECTORS, 1), e.dm.get("origin").allocation(0, SECTORS), "the origin's own file");
        }
    }
}
