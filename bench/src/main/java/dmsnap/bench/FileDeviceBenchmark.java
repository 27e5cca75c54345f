package dmsnap.bench;

import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * {@link FileDevice} with O_DIRECT, one thread, queue depth 1: the same work as
 * {@code fio --ioengine=psync --direct=1 --iodepth=1 --numjobs=1} on the same file
 * (bench/device-vs-fio.sh runs both side by side). Throughput in operations per second.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
public class FileDeviceBenchmark {
    private static final int SMALL = 4096;
    private static final int LARGE = 1 << 20;

    @State(Scope.Benchmark)
    public static class Target {
        FileDevice device;
        long blocks4k;
        long blocks1m;

        @Setup(Level.Trial)
        public void open() throws IOException {
            device = BenchDevices.openDirect(BenchDevices.benchFile());
            blocks4k = device.sizeBytes() / SMALL;
            blocks1m = device.sizeBytes() / LARGE;
        }

        @TearDown(Level.Trial)
        public void close() throws IOException {
            device.close();
        }
    }

    @State(Scope.Thread)
    public static class Buffers {
        Arena arena;
        MemorySegment small;
        MemorySegment large;
        SplittableRandom random;
        long sequential;

        @Setup(Level.Trial)
        public void allocate() {
            arena = Arena.ofConfined();
            small = arena.allocate(SMALL, 4096);
            large = arena.allocate(LARGE, 4096);
            large.fill((byte) 0x5a);
            small.fill((byte) 0xa5);
            random = new SplittableRandom(42);
        }

        @TearDown(Level.Trial)
        public void free() {
            arena.close();
        }
    }

    @Benchmark
    public void randomRead4k(Target t, Buffers b) throws IOException {
        t.device.read(b.random.nextLong(t.blocks4k) * SMALL, b.small);
    }

    @Benchmark
    public void randomWrite4k(Target t, Buffers b) throws IOException {
        t.device.write(b.random.nextLong(t.blocks4k) * SMALL, b.small);
    }

    @Benchmark
    public void sequentialRead1m(Target t, Buffers b) throws IOException {
        t.device.read(b.sequential++ % t.blocks1m * LARGE, b.large);
    }

    @Benchmark
    public void sequentialWrite1m(Target t, Buffers b) throws IOException {
        t.device.write(b.sequential++ % t.blocks1m * LARGE, b.large);
    }
}
