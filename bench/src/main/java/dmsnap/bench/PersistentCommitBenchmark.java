package dmsnap.bench;

import dmsnap.store.ChunkSize;
import dmsnap.store.PendingRemap;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.PersistentExceptionStore;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
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
 * Exceptions committed per second on a real file (mmapped metadata, fdatasync): each operation
 * allocates a chunk, optionally writes its 4 KiB of data with O_DIRECT ({@code writeData}: the
 * copy a real exception needs, which the chunk copier does), commits, and waits until the commit
 * is durable. {@code groupCommit=true} is the store as it is (concurrent committers share
 * rounds); {@code false} serialises prepare+commit so every commit pays its own round: one flush
 * per commit. Run with {@code -t 1}, {@code -t 16}, {@code -t 64}.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1, time = 3)
@Measurement(iterations = 3, time = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Benchmark)
public class PersistentCommitBenchmark {
    @Param({"true", "false"})
    boolean groupCommit;

    @Param({"false", "true"})
    boolean writeData;

    Path path;
    FileDevice cow;
    PersistentExceptionStore store;
    final ReentrantLock oneAtATime = new ReentrantLock();
    final AtomicLong nextOld = new AtomicLong();

    @Setup(Level.Iteration)
    public void open() throws IOException {
        Path dir = Path.of(System.getProperty("dmsnap.bench.dir", System.getProperty("java.io.tmpdir")));
        path = Files.createTempFile(dir, "commit-bench", ".cow");
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(8L << 30); // sparse: room for ~2M exceptions
        }
        cow = FileDevice.open(path);
        store = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
        store.load((o, n) -> {});
    }

    @TearDown(Level.Iteration)
    public void close() throws IOException {
        store.close();
        cow.close();
        Files.deleteIfExists(path);
    }

    @State(Scope.Thread)
    public static class Buffer {
        Arena arena;
        MemorySegment data;

        @Setup(Level.Trial)
        public void allocate() {
            arena = Arena.ofConfined();
            data = arena.allocate(4096, 4096);
            data.fill((byte) 0x5a);
        }

        @TearDown(Level.Trial)
        public void free() {
            arena.close();
        }
    }

    @Benchmark
    public boolean commit(Buffer b) throws Exception {
        if (!groupCommit) {
            oneAtATime.lock();
        }
        try {
            PendingRemap r = store.prepare(nextOld.getAndIncrement());
            if (writeData) {
                cow.write(r.newChunk() * 4096, b.data);
            }
            CountDownLatch durable = new CountDownLatch(1);
            boolean[] ok = new boolean[1];
            store.commit(r, true, (remap, success) -> {
                ok[0] = success;
                durable.countDown();
            });
            durable.await();
            return ok[0];
        } finally {
            if (!groupCommit) {
                oneAtATime.unlock();
            }
        }
    }
}
