package dmsnap.bench;

import dmsnap.store.ExceptionTable;
import java.util.SplittableRandom;

/**
 * Bytes per exception of {@link ExceptionTable} (a measurement of memory, not time, so a plain
 * program rather than a JMH benchmark): {@code java -cp benchmarks.jar
 * dmsnap.bench.ExceptionTableFootprint [count]} prints one line per layout.
 */
public final class ExceptionTableFootprint {
    private ExceptionTableFootprint() {}

    public static void main(String[] args) {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 10_000_000;
        try (ExceptionTable random = new ExceptionTable()) {
            SplittableRandom r = new SplittableRandom(3);
            for (int i = 0; i < count; i++) {
                long o;
                do {
                    o = r.nextLong(1L << 34);
                } while (!random.insert(o, 2 + i));
            }
            report("random", random);
        }
        try (ExceptionTable sequential = new ExceptionTable()) {
            for (int i = 0; i < count; i++) {
                sequential.insert(i, 2 + i);
            }
            report("sequential", sequential);
        }
    }

    /** Slots off-heap, and the occupancy bitmap walks read (on the heap): both count. */
    private static void report(String what, ExceptionTable t) {
        long bytes = t.memoryBytes() + t.occupancyBytes();
        System.out.printf(
                "%s: %d exceptions, %d runs, %d bytes off-heap + %d of occupancy bitmap, %.3f bytes per exception%n",
                what, t.size(), t.runCount(), t.memoryBytes(), t.occupancyBytes(), (double) bytes / t.size());
    }
}
