package dmsnap.bench;

import dmsnap.store.ExceptionTable;
import java.util.SplittableRandom;
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
 * A walk of {@link ExceptionTable.Cursor} over a whole origin, as a change map or a snapshot's
 * block status walks it (has, end, next): the runs of chunks with and without exceptions, on the
 * case of bench/block-status.sh ({@code exceptions} random exceptions over {@code originChunks}
 * chunks: 1 M over 64 GiB of 4 KiB chunks) and on a sparse one (1000 over the same origin).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Benchmark)
public class ExceptionTableWalkBenchmark {
    @Param({"16777216"})
    long originChunks;

    @Param({"1048576", "1000"})
    int exceptions;

    ExceptionTable table;

    @Setup(Level.Trial)
    public void fill() {
        table = new ExceptionTable();
        SplittableRandom random = new SplittableRandom(19);
        for (int i = 0; i < exceptions; i++) {
            while (!table.insert(random.nextLong(originChunks), 2 + i)) {
                // a chunk taken already: another
            }
        }
    }

    @TearDown(Level.Trial)
    public void free() {
        table.close();
    }

    /** The number of runs (with and without exceptions) from the origin's start to its end. */
    @Benchmark
    public long walk() {
        ExceptionTable.Cursor cursor = table.cursor();
        long runs = 0;
        for (long at = 0; at < originChunks; runs++) {
            at = cursor.has(at) ? cursor.end(at, originChunks) : cursor.next(at, originChunks);
        }
        return runs;
    }
}
