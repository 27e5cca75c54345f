package dmsnap.bench;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.FileDevice;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * 4 KiB random reads through a snapshot device (half of its chunks remapped to the COW, half
 * read from the origin) next to raw O_DIRECT reads of the same origin file, one thread, queue
 * depth 1. Files under {@code -Ddmsnap.bench.dir}, filled with data.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
        })
@State(Scope.Benchmark)
public class SnapshotReadBenchmark {
    private static final long BYTES = 256L << 20;
    private static final long CHUNKS = BYTES / 4096;

    Path dir;
    Arena arena;
    MemorySegment buffer;
    SplittableRandom random = new SplittableRandom(5);
    ChunkCopier copier;
    DeviceManager dm;
    MappedDevice snap;
    FileDevice raw;
    Path base;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        dir = BenchDevices.scratchDir("snapread");
        base = dir.resolve("base.img");
        try (FileChannel ch = FileChannel.open(base, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ByteBuffer data = ByteBuffer.allocate(1 << 20);
            for (long at = 0; at < BYTES; at += data.capacity()) {
                data.clear();
                while (data.hasRemaining()) {
                    data.putLong(at ^ data.position());
                }
                data.flip();
                ch.write(data, at);
            }
            ch.force(true);
        }
        Path cow = dir.resolve("cow.img");
        try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
            f.setLength(BYTES + (16L << 20));
        }
        arena = Arena.ofShared();
        buffer = arena.allocate(4096, 4096);
        copier = new ChunkCopier(4, 1 << 20);
        dm = BenchDevices.engine(copier);
        long sectors = BYTES >>> 9;
        MappedDevice origin = dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + base));
        origin.suspend();
        snap = dm.create("snap", null, TableParser.parse("0 " + sectors + " snapshot " + base + " " + cow + " P 8"));
        origin.resume();
        // Every other chunk gets an exception: reads hit both the COW and the origin.
        MemorySegment data = arena.allocate(4096, 4096).fill((byte) 1);
        for (long c = 0; c < CHUNKS; c += 2) {
            origin.submit(IoRequest.write(c * 8, data, false));
        }
        // The base file is held by the engine (flock): measure raw reads on a copy on the same file system.
        raw = FileDevice.open(Files.copy(base, dir.resolve("raw.img")));
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        raw.close();
        arena.close();
        BenchDevices.tearDown(dm, dir);
        copier.close();
    }

    @Benchmark
    public void snapshotRead() throws Exception {
        snap.submit(IoRequest.read(random.nextLong(CHUNKS) * 8, buffer));
    }

    @Benchmark
    public void rawRead() throws Exception {
        raw.read(random.nextLong(CHUNKS) * 4096, buffer);
    }
}
