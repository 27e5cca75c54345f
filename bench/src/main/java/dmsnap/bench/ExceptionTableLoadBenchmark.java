package dmsnap.bench;

import dmsnap.store.ExceptionTable;
import dmsnap.store.RemapSink;
import java.io.IOException;
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
 * Filling a fresh {@link ExceptionTable} with {@code exceptions} exceptions through its loading
 * sink, as a table load of a persistent COW does (the old chunks of {@link
 * BenchDevices#writeCowWithExceptions}: scattered over 2^32, new chunks ascending, skipping area
 * chunks), without the disk: the table's own share of {@link PersistentLoadBenchmark}. One shot
 * per iteration, the table closed after it. {@code idleThreads} platform threads wait beside it
 * as a daemon's pools do: every thread takes part in a shared arena's close.
 */
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@State(Scope.Benchmark)
public class ExceptionTableLoadBenchmark {
    private static final long EPA = 256;

    @Param({"1000000"})
    int exceptions;

    @Param({"0", "64"})
    int idleThreads;

    long[] olds;
    long[] news;
    private final CountDownLatch stop = new CountDownLatch(1);
    private final List<Thread> idle = new ArrayList<>();

    @Setup(Level.Trial)
    public void remaps() {
        olds = new long[exceptions];
        news = new long[exceptions];
        long nextNew = 2;
        for (int i = 0; i < exceptions; i++) {
            if (nextNew % (EPA + 1) == 1) {
                nextNew++;
            }
            olds[i] = i * 2654435761L % (1L << 32);
            news[i] = nextNew++;
        }
        for (int i = 0; i < idleThreads; i++) {
            Thread t = Thread.ofPlatform().daemon().name("idle-" + i).start(() -> {
                try {
                    stop.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt(); // the trial is over
                }
            });
            idle.add(t);
        }
    }

    @TearDown(Level.Trial)
    public void stopIdle() throws InterruptedException {
        stop.countDown();
        for (Thread t : idle) {
            t.join();
        }
    }

    @Benchmark
    public long load() throws IOException {
        try (ExceptionTable table = new ExceptionTable()) {
            RemapSink sink = table.loadingSink();
            for (int i = 0; i < olds.length; i++) {
                sink.remap(olds[i], news[i]);
            }
            sink.endOfList();
            if (table.size() != exceptions) {
                throw new IllegalStateException("loaded " + table.size() + " of " + exceptions);
            }
            return table.memoryBytes();
        }
    }
}
