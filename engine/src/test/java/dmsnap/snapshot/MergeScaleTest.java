package dmsnap.snapshot;

import static dmsnap.snapshot.MergeProbes.awaitMergeStopped;
import static dmsnap.snapshot.MergeProbes.merging;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.device.BackingDevices;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.store.device.FileDevice;
import dmsnap.table.TableParser;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Merges that cross areas and large ones: a snapshot whose exceptions fill more than two areas
 * (made through the engine, runs and single chunks), and a COW with one million exceptions in
 * the kernel's layout (chunk 1: 32768 areas, each one run), on sparse files. The million-exception
 * merge runs on tmpfs when there is one ({@code /dev/shm}), where a flush costs nothing and it
 * takes seconds; on a disk every one of its 32768 steps pays two real flushes, so there it is the
 * {@code slow} variant, as is the chunk-8 one (4 GiB of data).
 */
class MergeScaleTest {
    @TempDir
    Path dir;

    @Test
    void aCowWithAnAreaRolloverMergesAcrossTheAreas() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.createOriginAndSnapshot("P", 8);
            // 600 exceptions: runs of 3 with gaps, then singles; areas 0 and 1 fill, area 2 holds 88.
            int written = 0;
            for (int c = 0; written < 600; c += 4) {
                e.write("origin", c * 8L, c < 1200 ? 24 : 8, c);
                written += c < 1200 ? 3 : 1;
            }
            assertEquals(
                    "0 16384 snapshot " + (600 + 2 + 2) * 8 + "/8192 32",
                    e.status("snap", false),
                    "three areas: metadata 4 chunks");
            String view = e.sha("snap");
            e.startMerge("P", 8);
            awaitMergeStopped(e);
            assertEquals("0 16384 snapshot-merge 16/8192 16", e.status("origin", false));
            assertEquals(view, SnapshotEngine.sha(e.base));
            byte[] cow = Files.readAllBytes(e.cow);
            for (int area = 0; area < 3; area++) {
                int at = (1 + area * 257) * 4096;
                assertArrayEquals(new byte[4096], Arrays.copyOfRange(cow, at, at + 4096), "area " + area + " is zero");
            }
        }
    }

    /** A directory on tmpfs, or null. */
    private static Path tmpfs() throws IOException {
        Path shm = Path.of("/dev/shm");
        if (!Files.isDirectory(shm) || !Files.isWritable(shm)) {
            return null;
        }
        return Files.createTempDirectory(shm, "dmsnap-merge-scale");
    }

    private static void deleteTree(Path d) throws IOException {
        try (Stream<Path> files = Files.walk(d)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    @Test
    void aMillionExceptionsMergeOnTmpfs() throws Exception {
        Path d = tmpfs();
        assumeTrue(d != null, "no writable /dev/shm: the disk variant is tagged slow");
        try {
            // tmpfs reports no O_DIRECT alignment (a 4 KiB logical block for O_DIRECT files): buffered
            // files have 512-byte blocks there, and tmpfs has no cache to bypass anyway.
            millionExceptions(d, 1, new BackingDevices(real -> FileDevice.open(real, FileDevice.Option.BUFFERED)));
        } finally {
            deleteTree(d);
        }
    }

    @Test
    @Tag("slow")
    void aMillionExceptionsMergeOnDisk() throws Exception {
        millionExceptions(dir, 1, new BackingDevices());
    }

    @Test
    @Tag("slow")
    void aMillionExceptionsOfFourKibMerge() throws Exception {
        millionExceptions(dir, 8, new BackingDevices());
    }

    /**
     * One million exceptions, origin chunk i in COW chunk i's slot of the kernel's allocation
     * order (so each area is one run), 1024 more origin chunks without exceptions. Sparse files;
     * every 4096th exception carries data, and the origin has other data there beforehand.
     */
    private static void millionExceptions(Path d, int chunk, BackingDevices devices) throws Exception {
        long exceptions = 1_000_000;
        long chunkBytes = chunk * 512L;
        long epa = chunk * 32L;
        long areas = exceptions / epa + 1;
        Path base = d.resolve("base.img");
        Path cow = d.resolve("cow.img");
        long originChunks = exceptions + 1024;
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(originChunks * chunkBytes);
        }
        try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
            f.setLength((2 + exceptions + areas) * chunkBytes);
        }
        try (FileChannel o = FileChannel.open(base, StandardOpenOption.WRITE);
                FileChannel c = FileChannel.open(cow, StandardOpenOption.WRITE)) {
            ByteBuffer header = ByteBuffer.allocate((int) chunkBytes).order(ByteOrder.LITTLE_ENDIAN);
            header.putInt(0x70416e53).putInt(1).putInt(1).putInt(chunk).rewind();
            c.write(header, 0);
            ByteBuffer area = ByteBuffer.allocate((int) chunkBytes).order(ByteOrder.LITTLE_ENDIAN);
            long nextNew = 2;
            long done = 0;
            for (long k = 0; k < areas; k++) {
                area.clear();
                Arrays.fill(area.array(), (byte) 0);
                for (int i = 0; i < epa && done < exceptions; i++, done++) {
                    if (nextNew % (epa + 1) == 1) {
                        nextNew++;
                    }
                    if (done % 4096 == 0) {
                        c.write(marked(chunkBytes, 0x5a, done), nextNew * chunkBytes);
                        o.write(marked(chunkBytes, 0x0f, done), done * chunkBytes);
                    }
                    area.putLong(done).putLong(nextNew++);
                }
                area.rewind();
                c.write(area, (1 + k * (epa + 1)) * chunkBytes);
            }
            o.write(marked(chunkBytes, 0x77, -1), (originChunks - 1) * chunkBytes);
        }
        long start = System.nanoTime();
        try (SnapshotEngine e = new SnapshotEngine(d, base, cow, devices)) {
            long sectors = originChunks * chunk;
            e.dm.create(
                    "origin",
                    null,
                    TableParser.parse("0 " + sectors + " snapshot-merge " + base + " " + cow + " P " + chunk));
            long loaded = System.nanoTime();
            awaitMergeStopped(e);
            long merged = System.nanoTime();
            assertEquals(
                    "0 " + sectors + " snapshot-merge " + 2 * chunk + "/" + Files.size(cow) / 512 + " " + 2 * chunk,
                    e.status("origin", false));
            assertEquals(
                    (exceptions + epa - 1) / epa,
                    merging(e).merger().steps(),
                    "one step per full area: each is one run");
            System.out.printf(
                    "merge of %d exceptions (chunk %d, %d areas): load %.1f s, merge %.1f s%n",
                    exceptions, chunk, areas, (loaded - start) / 1e9, (merged - loaded) / 1e9);
        }
        try (FileChannel o = FileChannel.open(base, StandardOpenOption.READ);
                FileChannel c = FileChannel.open(cow, StandardOpenOption.READ)) {
            for (long i = 0; i < exceptions; i += 4096) {
                ByteBuffer got = ByteBuffer.allocate((int) chunkBytes);
                o.read(got, i * chunkBytes);
                assertEquals(marked(chunkBytes, 0x5a, i), got.flip(), "origin chunk " + i + " came from the COW");
            }
            ByteBuffer last = ByteBuffer.allocate((int) chunkBytes);
            o.read(last, (originChunks - 1) * chunkBytes);
            assertEquals(marked(chunkBytes, 0x77, -1), last.flip(), "a chunk without exception is untouched");
            ByteBuffer area0 = ByteBuffer.allocate((int) chunkBytes);
            c.read(area0, chunkBytes);
            assertTrue(Arrays.equals(new byte[(int) chunkBytes], area0.array()), "area 0 is zero");
        }
    }

    private static ByteBuffer marked(long bytes, int fill, long id) {
        ByteBuffer b = ByteBuffer.allocate((int) bytes);
        Arrays.fill(b.array(), (byte) fill);
        b.putLong(0, id);
        return b;
    }
}
