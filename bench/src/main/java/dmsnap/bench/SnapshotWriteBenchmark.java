package dmsnap.bench;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.store.ChunkSize;
import dmsnap.store.PendingRemap;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.PersistentExceptionStore;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
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
 * Origin first writes (each write lands in a chunk no snapshot has yet, so every snapshot
 * copies it) through the engine, next to the model bound: the same work done directly on the
 * same kind of files (read the origin chunk, write it into each COW, commit each exception and
 * wait until durable, write the data). 4 KiB chunks, one thread, files under
 * {@code -Ddmsnap.bench.dir}.
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
public class SnapshotWriteBenchmark {
    private static final long ORIGIN_BYTES = 4L << 30;
    private static final long COW_BYTES = 4L << 30;

    @Param({"1", "4"})
    int snapshots;

    Path dir;
    Arena arena;
    MemorySegment chunk;
    MemorySegment copyBuffer;
    long nextChunk;

    // engine
    ChunkCopier copier;
    DeviceManager dm;
    MappedDevice origin;

    // model bound
    FileDevice modelOrigin;
    List<FileDevice> modelCows = new ArrayList<>();
    List<PersistentExceptionStore> modelStores = new ArrayList<>();

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        dir = BenchDevices.scratchDir("snapwrite");
        arena = Arena.ofShared();
        chunk = arena.allocate(4096, 4096).fill((byte) 0x5a);
        copyBuffer = arena.allocate(4096, 4096);
        Path base = sparse("base.img", ORIGIN_BYTES);
        copier = new ChunkCopier(4, 1 << 20);
        dm = BenchDevices.engine(copier);
        long sectors = ORIGIN_BYTES >>> 9;
        origin = dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + base));
        origin.suspend();
        for (int i = 0; i < snapshots; i++) {
            Path cow = sparse("cow" + i, COW_BYTES);
            dm.create("snap" + i, null, TableParser.parse("0 " + sectors + " snapshot " + base + " " + cow + " P 8"));
        }
        origin.resume();

        modelOrigin = FileDevice.open(sparse("model-base.img", ORIGIN_BYTES));
        for (int i = 0; i < snapshots; i++) {
            FileDevice cow = FileDevice.open(sparse("model-cow" + i, COW_BYTES));
            PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
            store.load((o, n) -> {});
            modelCows.add(cow);
            modelStores.add(store);
        }
    }

    private Path sparse(String name, long bytes) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return p;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        for (PersistentExceptionStore s : modelStores) {
            s.close();
        }
        for (FileDevice d : modelCows) {
            d.close();
        }
        modelOrigin.close();
        arena.close();
        BenchDevices.tearDown(dm, dir);
        copier.close();
    }

    @Benchmark
    public void engineFirstWrite() throws Exception {
        origin.submit(IoRequest.write(nextChunk++ * 8, chunk, false));
    }

    @Benchmark
    public void modelBound() throws Exception {
        long c = nextChunk++;
        MemorySegment copy = copyBuffer;
        modelOrigin.read(c * 4096, copy);
        CountDownLatch durable = new CountDownLatch(modelStores.size());
        for (int i = 0; i < modelStores.size(); i++) {
            PendingRemap r = modelStores.get(i).prepare(c);
            modelCows.get(i).write(r.newChunk() * 4096, copy);
            modelStores.get(i).commit(r, true, (remap, ok) -> durable.countDown());
        }
        durable.await();
        modelOrigin.write(c * 4096, chunk);
    }
}
