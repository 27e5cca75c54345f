package dmsnap.bench;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionTable;
import dmsnap.store.PendingRemap;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.PersistentExceptionStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * Activating a persistent COW that holds {@code exceptions} exceptions (chunk 8, written in the
 * kernel's layout in a sparse file under {@code -Ddmsnap.bench.dir}): open, read every area into
 * an {@link ExceptionTable}, close. One shot per iteration; the page cache is warm after the
 * first (the kernel's activation reads through the page cache too).
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Benchmark)
public class PersistentLoadBenchmark {
    @Param({"1000000"})
    int exceptions;

    Path cow;

    @Setup(Level.Trial)
    public void writeCow() throws IOException {
        Path dir = Path.of(System.getProperty("dmsnap.bench.dir", System.getProperty("java.io.tmpdir")));
        cow = Files.createTempFile(dir, "load-bench", ".cow");
        BenchDevices.writeCowWithExceptions(cow, exceptions, true);
    }

    @TearDown(Level.Trial)
    public void delete() throws IOException {
        Files.deleteIfExists(cow);
    }

    @Benchmark
    public long load() throws IOException {
        try (FileDevice device = FileDevice.open(cow);
                PersistentExceptionStore store = new PersistentExceptionStore(device, new ChunkSize(8), false, 512);
                ExceptionTable table = new ExceptionTable()) {
            if (store.load(table.loadingSink()) != ExceptionStore.LoadResult.VALID || table.size() != exceptions) {
                throw new IllegalStateException("loaded " + table.size() + " of " + exceptions);
            }
            PendingRemap next = store.prepare(1L << 40 - 1);
            return next.newChunk();
        }
    }
}
