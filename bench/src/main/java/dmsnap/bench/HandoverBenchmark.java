package dmsnap.bench;

import dmsnap.device.DeviceManager;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.Table;
import dmsnap.table.TableParser;
import java.io.RandomAccessFile;
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
 * A snapshot whose COW holds {@code exceptions} exceptions: the live refresh (load the same
 * table, resume: the handover) next to activating the same COW from disk (create the device:
 * the store reads every area). Single shots; the handover should not depend on the count.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
        })
@State(Scope.Benchmark)
public class HandoverBenchmark {
    @Param({"10000", "1000000"})
    long exceptions;

    Path dir;
    ChunkCopier copier;
    DeviceManager dm;
    Table table;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        dir = BenchDevices.scratchDir("handover");
        Path base = dir.resolve("base.img");
        long originChunks = exceptions + 1024;
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(originChunks * 4096);
        }
        Path cow = dir.resolve("cow.img");
        BenchDevices.writeCowWithExceptions(cow, exceptions, false);
        copier = new ChunkCopier(2, 1 << 20);
        dm = BenchDevices.engine(copier);
        table = TableParser.parse("0 " + originChunks * 8 + " snapshot " + base + " " + cow + " P 8");
    }

    /** Before each shot: the snapshot is live (handover) or absent (activation). */
    @Setup(Level.Invocation)
    public void prepare() throws Exception {
        if (dm.find("snap") == null) {
            dm.create("snap", null, table);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        BenchDevices.tearDown(dm, dir);
        copier.close();
    }

    /** lvchange --refresh: load the identical table and resume; the store moves in O(1). */
    @Benchmark
    public void handover() throws Exception {
        dm.load("snap", table);
        dm.get("snap").resume();
    }

    /** Remove, then activate from disk: the store reads every area into a new exception table. */
    @Benchmark
    public void activateFromDisk() throws Exception {
        dm.remove("snap", false);
        dm.create("snap", null, table);
    }
}
