package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.KernelFixtures;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Merges of COWs the kernel wrote (shared/fixtures/kernel-cow): activated as snapshot-merge on
 * the origin the kernel left, each starts at the usage the kernel showed, merges its runs from
 * the tail of the on-disk list, ends at {@code 16/<cow> 16} with area 0 zeroed, and leaves the
 * origin with the sha256 of the kernel's snapshot view. The invalidated COWs of the overflow
 * scenario are not merged at all. And the basic scenario's writes replayed, then the merge the
 * LVM way (handover from the live snapshot).
 */
class MergeKernelFixturesTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"basic, cow.img, origin.img", "handover, cow.img, origin.img", "overflow, cow2.img, origin2.img"})
    void aKernelCowMergesIntoItsOriginAndTheOriginBecomesTheSnapshotView(
            String scenario, String cowImage, String originImage) throws Exception {
        KernelFixtures.CowDump dump = KernelFixtures.cowDumps(scenario).stream()
                .filter(d -> d.image().equals(cowImage))
                .findFirst()
                .orElseThrow();
        Path base = Files.write(dir.resolve(originImage), KernelFixtures.image(scenario, originImage));
        Path cow = Files.write(dir.resolve(cowImage), KernelFixtures.image(scenario, cowImage));
        List<Long> originWrites = new CopyOnWriteArrayList<>();
        BackingDevices devices = new BackingDevices(real -> {
            FaultyDevice f = new FaultyDevice(FileDevice.open(real, FileDevice.Option.BUFFERED));
            if (real.getFileName().toString().equals(originImage)) {
                f.failWhen(r -> {
                    if (r.op() == FaultyDevice.Op.WRITE) {
                        originWrites.add(r.offsetBytes() / 4096);
                    }
                    return false;
                });
            }
            return f;
        });
        long originSectors = Files.size(base) / 512;
        long cowSectors = Files.size(cow) / 512;
        try (SnapshotEngine e = new SnapshotEngine(dir, base, cow, devices)) {
            e.dm.create("origin", null, null);
            e.dm.load(
                    "origin", TableParser.parse("0 " + originSectors + " snapshot-merge " + base + " " + cow + " P 8"));
            assertEquals(
                    "0 " + originSectors + " snapshot-merge " + dump.usage(),
                    e.status("origin", true),
                    "the kernel's usage at load");
            e.dm.get("origin").resume();
            awaitMergeStopped(e);
            assertEquals("0 " + originSectors + " snapshot-merge 16/" + cowSectors + " 16", e.status("origin", false));
            assertEquals(dump.snapshotSha256(), e.sha("origin"));
        }
        assertEquals(dump.snapshotSha256(), SnapshotEngine.sha(base), "the origin image is the snapshot view");
        assertArrayEquals(new byte[4096], Arrays.copyOfRange(Files.readAllBytes(cow), 4096, 8192), "area 0 is zero");
        assertEquals(expectedRunStarts(dump.exceptions()), originWrites, "runs from the tail of the list");
    }

    /** The first origin chunk of each run, the last run of the list first. */
    private static List<Long> expectedRunStarts(List<KernelFixtures.DumpedException> list) {
        List<Long> starts = new ArrayList<>();
        int end = list.size() - 1;
        while (end >= 0) {
            int start = end;
            while (start > 0
                    && list.get(start - 1).oldChunk() == list.get(start).oldChunk() - 1
                    && list.get(start - 1).newChunk() == list.get(start).newChunk() - 1
                    && list.get(start - 1).area() == list.get(end).area()) {
                start--;
            }
            starts.add(list.get(start).oldChunk());
            end = start - 1;
        }
        return starts;
    }

    @ParameterizedTest
    @CsvSource({"cow.img, origin.img", "cow3.img, origin3.img"})
    void anInvalidatedKernelCowIsNotMerged(String cowImage, String originImage) throws Exception {
        Path base = Files.write(dir.resolve(originImage), KernelFixtures.image("overflow", originImage));
        Path cow = Files.write(dir.resolve(cowImage), KernelFixtures.image("overflow", cowImage));
        String before = SnapshotEngine.sha(base);
        long sectors = Files.size(base) / 512;
        try (SnapshotEngine e = new SnapshotEngine(dir, base, cow, new BackingDevices())) {
            e.dm.create(
                    "origin",
                    null,
                    TableParser.parse("0 " + sectors + " snapshot-merge " + base + " " + cow + " PO 8"));
            awaitMergeStopped(e);
            assertEquals("0 " + sectors + " snapshot-merge Invalid", e.status("origin", false));
            assertEquals(before, e.sha("origin"), "the device reads the origin");
        }
        assertEquals(before, SnapshotEngine.sha(base), "nothing was copied");
        assertArrayEquals(
                KernelFixtures.image("overflow", cowImage), Files.readAllBytes(cow), "nor written to the COW");
    }

    private static byte[] records(String prefix, long sectors) {
        byte[] bytes = new byte[(int) (sectors * 512)];
        for (int s = 0; s < sectors; s++) {
            byte[] record = String.format("%s%012d\n", prefix, s).getBytes(StandardCharsets.US_ASCII);
            for (int r = 0; r < 32; r++) {
                System.arraycopy(record, 0, bytes, s * 512 + r * 16, 16);
            }
        }
        return bytes;
    }

    /**
     * The basic scenario's setup and writes (scenario.sh), then lvconvert --merge: the origin
     * ends as the kernel's snapshot view (its SHA256 snap line) and the COW as merged.
     */
    @Test
    void theBasicScenarioReplayedThenMergedTheLvmWay() throws Exception {
        Path base = Files.write(dir.resolve("origin.img"), records("ORG", 16384));
        Path cow = Files.write(dir.resolve("cow.img"), new byte[4 << 20]);
        String expectedSnap = null;
        Matcher sha = Pattern.compile("(?m)^SHA256 snap: (\\S+)").matcher(KernelFixtures.text("basic", "result.txt"));
        if (sha.find()) {
            expectedSnap = sha.group(1);
        }
        byte[] pat = records("PAT", 4096);
        try (SnapshotEngine e = new SnapshotEngine(dir, base, cow, new BackingDevices())) {
            e.createOriginAndSnapshot("P", 8);
            Matcher w = Pattern.compile("(?m)^w (\\S+) (\\d+) (\\d+) (\\d+)")
                    .matcher(KernelFixtures.text("basic", "scenario.sh"));
            int writes = 0;
            while (w.find()) {
                MemorySegment data = e.buffer(Long.parseLong(w.group(3)));
                data.copyFrom(MemorySegment.ofArray(pat).asSlice(Long.parseLong(w.group(4)) << 9, data.byteSize()));
                e.dm.get(w.group(1)).submit(IoRequest.write(Long.parseLong(w.group(2)), data, false));
                writes++;
            }
            assertEquals(10, writes);
            assertEquals(
                    "0 16384 snapshot 104/8192 16", e.status("snap", false), "the kernel's status after the writes");
            assertEquals(expectedSnap, e.sha("snap"));
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
            assertEquals(expectedSnap, e.sha("origin"));
        }
        assertEquals(expectedSnap, SnapshotEngine.sha(base));
    }
}
