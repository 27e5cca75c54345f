package dmsnap.bench;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.IoMemory;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.FileDevice;
import dmsnap.table.Table;
import dmsnap.table.TableParser;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.StatusText;
import dmsnap.target.TargetStatus;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Merge throughput next to a raw copy of the same bytes on the same files: a persistent COW
 * (chunk {@code chunk}) holding {@code mib} MiB of random data in exceptions of consecutive
 * origin chunks, as a snapshot of sequentially written data has (each area one run). {@code
 * merge} activates it as snapshot-merge and waits until the merge is done (load, every step with
 * its sub-copies, origin flush and {@code commit_merge}, the table removals); {@code rawCopy} copies
 * the same COW ranges to the same origin ranges with O_DIRECT 1 MiB reads and writes (into a
 * buffer in a huge page, as the copier's) on one thread and one fdatasync at the end, the least a
 * merge must do. Before each shot the COW's areas are written
 * back (the merge clears them); the data chunks stay.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
        })
@State(Scope.Benchmark)
public class MergeBenchmark {
    @Param({"8", "16", "32"})
    int chunk;

    @Param({"256"})
    int mib;

    Path dir;
    Path base;
    Path cow;
    long chunkBytes;
    long exceptions;
    long epa;
    long areas;
    byte[][] areaBytes;
    ChunkCopier copier;
    DeviceManager dm;
    Table table;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        dir = BenchDevices.scratchDir("merge");
        base = dir.resolve("base.img");
        cow = dir.resolve("cow.img");
        chunkBytes = chunk * 512L;
        exceptions = ((long) mib << 20) / chunkBytes;
        epa = chunk * 32L;
        areas = exceptions / epa + 1;
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(exceptions * chunkBytes);
        }
        areaBytes = new byte[(int) areas][];
        Random random = new Random(8);
        try (FileChannel o = FileChannel.open(base, StandardOpenOption.WRITE);
                FileChannel c = FileChannel.open(cow, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            // Real (allocated) data everywhere, so both copies read and write the disk.
            byte[] block = new byte[1 << 20];
            random.nextBytes(block);
            for (long at = 0; at < exceptions * chunkBytes; at += block.length) {
                o.write(ByteBuffer.wrap(block), at);
            }
            ByteBuffer header = ByteBuffer.allocate((int) chunkBytes).order(ByteOrder.LITTLE_ENDIAN);
            header.putInt(0x70416e53).putInt(1).putInt(1).putInt(chunk).rewind();
            c.write(header, 0);
            long nextNew = 2;
            long done = 0;
            for (int k = 0; k < areas; k++) {
                ByteBuffer area = ByteBuffer.allocate((int) chunkBytes).order(ByteOrder.LITTLE_ENDIAN);
                long first = nextNew + (nextNew % (epa + 1) == 1 ? 1 : 0);
                int n = 0;
                for (; n < epa && done < exceptions; n++, done++) {
                    if (nextNew % (epa + 1) == 1) {
                        nextNew++;
                    }
                    area.putLong(done).putLong(nextNew++);
                }
                random.nextBytes(block);
                for (long at = 0; at < n * chunkBytes; at += block.length) {
                    c.write(
                            ByteBuffer.wrap(block, 0, (int) Math.min(block.length, n * chunkBytes - at)),
                            first * chunkBytes + at);
                }
                areaBytes[k] = area.array();
                c.write(ByteBuffer.wrap(areaBytes[k]), (1 + k * (epa + 1)) * chunkBytes);
            }
            o.force(true);
            c.force(true);
        }
        copier = new ChunkCopier(
                Math.max(2, Runtime.getRuntime().availableProcessors() * 2), 1 << 20); // as the daemon's
        dm = BenchDevices.engine(copier);
        table = TableParser.parse("0 " + exceptions * chunk + " snapshot-merge " + base + " " + cow + " P " + chunk);
    }

    /** The merge cleared the areas: write them back. */
    @Setup(Level.Iteration)
    public void restoreAreas() throws Exception {
        try (FileChannel c = FileChannel.open(cow, StandardOpenOption.WRITE)) {
            for (int k = 0; k < areas; k++) {
                c.write(ByteBuffer.wrap(areaBytes[k]), (1 + k * (epa + 1)) * chunkBytes);
            }
            c.force(true);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        BenchDevices.tearDown(dm, dir);
        copier.close();
    }

    /** The bytes both methods move: one run per area, old chunk i from the COW to origin chunk i. */
    public long bytes() {
        return exceptions * chunkBytes;
    }

    @Benchmark
    public void merge() throws Exception {
        dm.create("vol", null, table);
        MappedDevice vol = dm.get("vol");
        while (true) {
            // Done when only the header and the one metadata area are left allocated.
            TargetStatus status = vol.status(false).getFirst().status();
            if (status instanceof SnapshotStatus.Usage u
                    && u.allocatedSectors() == 2 * chunk
                    && u.metadataSectors() == 2 * chunk) {
                break;
            }
            if (status instanceof SnapshotStatus.MergeFailed || status instanceof SnapshotStatus.Invalid) {
                throw new IllegalStateException("the merge stopped: " + StatusText.info(status));
            }
            Thread.sleep(0, 200_000);
        }
        dm.remove("vol", false);
    }

    @Benchmark
    public void rawCopy() throws Exception {
        try (FileDevice from = FileDevice.open(cow);
                FileDevice to = FileDevice.open(base);
                IoMemory memory = IoMemory.forBuffers(1, 1 << 20)) {
            MemorySegment buffer = memory.segment().asSlice(0, 1 << 20); // in a huge page, as the copier's
            long done = 0;
            for (int k = 0; k < areas && done < exceptions; k++) {
                long n = Math.min(epa, exceptions - done);
                long source = (2 + k * (epa + 1)) * chunkBytes;
                long target = done * chunkBytes;
                for (long at = 0; at < n * chunkBytes; at += buffer.byteSize()) {
                    MemorySegment piece = buffer.asSlice(0, Math.min(buffer.byteSize(), n * chunkBytes - at));
                    from.read(source + at, piece);
                    to.write(target + at, piece);
                }
                done += n;
            }
            to.flush();
        }
    }
}
