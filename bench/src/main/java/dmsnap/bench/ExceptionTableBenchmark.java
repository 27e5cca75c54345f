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
 * {@link ExceptionTable} lookups (hit, miss) and inserts on a table of {@code exceptions}
 * random exceptions over a 2^34-chunk origin (64 TiB of 4 KiB chunks).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Benchmark)
public class ExceptionTableBenchmark {
    private static final long ORIGIN_CHUNKS = 1L << 34;

    @Param({"10000000"})
    int exceptions;

    ExceptionTable table;
    long[] present;

    @Setup(Level.Trial)
    public void fill() {
        table = new ExceptionTable();
        present = new long[1 << 20];
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < exceptions; i++) {
            long o;
            do {
                o = random.nextLong(ORIGIN_CHUNKS);
            } while (!table.insert(o, 2 + i));
            if (i < present.length) {
                present[i] = o;
            }
        }
    }

    @TearDown(Level.Trial)
    public void free() {
        table.close();
    }

    @State(Scope.Thread)
    public static class Cursor {
        final SplittableRandom random = new SplittableRandom(11);
        long nextNew = 1L << 36;
    }

    @Benchmark
    public long lookupHit(Cursor c) {
        return table.lookup(present[c.random.nextInt(present.length)]);
    }

    @Benchmark
    public long lookupMiss(Cursor c) {
        return table.lookup(ORIGIN_CHUNKS + c.random.nextLong(ORIGIN_CHUNKS));
    }

    /** Inserts past the filled range (a growing table, as a snapshot's is). */
    @Benchmark
    public boolean insert(Cursor c) {
        return table.insert(ORIGIN_CHUNKS + c.random.nextLong(ORIGIN_CHUNKS), c.nextNew++);
    }
}
