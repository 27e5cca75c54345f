package dmsnap.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@link MergeBenchmark}'s two methods, alternated in one process: raw copy, merge, raw copy,
 * merge... on the same files, so that both see the same machine (this VM's disk throughput moves
 * by tens of percent from minute to minute; JMH runs one method's iterations after the other's).
 * Prints one line per chunk size: medians in MiB/s, the ratio of the medians and every round's.
 *
 * <p>{@code java -cp benchmarks.jar dmsnap.bench.MergeThroughput MIB ROUNDS CHUNK...} (with
 * {@code -Ddmsnap.bench.dir}).
 */
public final class MergeThroughput {
    private MergeThroughput() {}

    public static void main(String[] args) throws Exception {
        int mib = Integer.parseInt(args[0]);
        int rounds = Integer.parseInt(args[1]);
        for (int i = 2; i < args.length; i++) {
            MergeBenchmark b = new MergeBenchmark();
            b.chunk = Integer.parseInt(args[i]);
            b.mib = mib;
            b.setUp();
            try {
                timeRaw(b);
                timeMerge(b); // warm-up
                List<Double> raw = new ArrayList<>();
                List<Double> merge = new ArrayList<>();
                List<String> ratios = new ArrayList<>();
                for (int r = 0; r < rounds; r++) {
                    double rawMib = mib / timeRaw(b);
                    double mergeMib = mib / timeMerge(b);
                    raw.add(rawMib);
                    merge.add(mergeMib);
                    ratios.add(String.format(Locale.ROOT, "%.2f", mergeMib / rawMib));
                }
                double rawMedian = median(raw);
                double mergeMedian = median(merge);
                System.out.printf(
                        Locale.ROOT,
                        "chunk=%d mib=%d raw=%.0f merge=%.0f ratio=%.3f rounds=%s%n",
                        b.chunk,
                        mib,
                        rawMedian,
                        mergeMedian,
                        mergeMedian / rawMedian,
                        String.join("/", ratios));
            } finally {
                b.tearDown();
            }
        }
    }

    private static double timeRaw(MergeBenchmark b) throws Exception {
        long t = System.nanoTime();
        b.rawCopy();
        return (System.nanoTime() - t) / 1e9;
    }

    private static double timeMerge(MergeBenchmark b) throws Exception {
        b.restoreAreas();
        long t = System.nanoTime();
        b.merge();
        return (System.nanoTime() - t) / 1e9;
    }

    private static double median(List<Double> values) {
        List<Double> sorted = values.stream().sorted().toList();
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }
}
