package dmsnap.nbd;

import dmsnap.device.MappedDevice;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntUnaryOperator;

/**
 * A block-status metadata context an export offers (proto.md "Metadata querying", qemu's
 * docs/interop/nbd.rst for the {@code qemu:} namespace): its name, and the status of a run of
 * the export's bytes in it.
 *
 * <ul>
 *   <li>{@code base:allocation} on every export: a hole reads as zeroes ({@code HOLE|ZERO}),
 *       anything else is data (0); see {@link MappedDevice#allocation}.
 *   <li>{@code dmsnap:changed:S} on an origin or snapshot export, for every other valid snapshot
 *       S of the same origin: dirty (1) where the export may differ from S; see {@link
 *       MappedDevice#changedRuns}. With the daemon's opt-in, the same map as {@code
 *       qemu:dirty-bitmap:S} for qemu's clients.
 *   <li>{@code qemu:allocation-depth}, with the opt-in: 0 a hole, 1 the export's own data (a
 *       snapshot's exception), 2 its origin's.
 * </ul>
 */
sealed interface MetaContext {
    int NBD_STATE_HOLE = 1;
    int NBD_STATE_ZERO = 2;
    int NBD_STATE_DIRTY = 1;

    String BASE_ALLOCATION = "base:allocation";
    String ALLOCATION_DEPTH = "qemu:allocation-depth";
    String CHANGED_PREFIX = "dmsnap:changed:";
    String DIRTY_BITMAP_PREFIX = "qemu:dirty-bitmap:";

    String name();

    /**
     * The runs of {@code device} from sector {@code sector} on, each with its status flags in this
     * context, in order, for at most {@code maxSectors} or until {@code sink} says stop (a whole
     * BLOCK_STATUS reply in one walk).
     *
     * @throws IOException the status cannot be told (a failing device, a baseline gone)
     */
    void runs(MappedDevice device, long sector, long maxSectors, RunSink sink) throws IOException, InterruptedException;

    /** Takes runs in order; false stops the walk. */
    @FunctionalInterface
    interface RunSink {
        boolean accept(long sectors, int flags);
    }

    /** The allocation runs of {@code device} in one walk, each with the flags {@code flags} gives its depth. */
    private static void allocationRuns(
            MappedDevice device, long sector, long maxSectors, RunSink sink, IntUnaryOperator flags)
            throws IOException, InterruptedException {
        device.allocationRuns(sector, maxSectors, (sectors, depth) -> sink.accept(sectors, flags.applyAsInt(depth)));
    }

    record BaseAllocation() implements MetaContext {
        @Override
        public String name() {
            return BASE_ALLOCATION;
        }

        @Override
        public void runs(MappedDevice device, long sector, long maxSectors, RunSink sink)
                throws IOException, InterruptedException {
            allocationRuns(device, sector, maxSectors, sink, depth -> depth == 0 ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);
        }
    }

    record AllocationDepth() implements MetaContext {
        @Override
        public String name() {
            return ALLOCATION_DEPTH;
        }

        @Override
        public void runs(MappedDevice device, long sector, long maxSectors, RunSink sink)
                throws IOException, InterruptedException {
            allocationRuns(device, sector, maxSectors, sink, depth -> depth);
        }
    }

    /** Changes since snapshot {@code baseline}, under {@code name} ({@code dmsnap:changed:} or {@code qemu:dirty-bitmap:}). */
    record ChangedSince(String name, String baseline) implements MetaContext {
        @Override
        public void runs(MappedDevice device, long sector, long maxSectors, RunSink sink)
                throws IOException, InterruptedException {
            device.changedRuns(
                    baseline,
                    sector,
                    maxSectors,
                    (sectors, changed) -> sink.accept(sectors, changed ? NBD_STATE_DIRTY : 0));
        }
    }

    /** Every context {@code device} offers now; the {@code qemu:} ones only with {@code qemuContexts}. */
    static List<MetaContext> offered(MappedDevice device, boolean qemuContexts) {
        List<MetaContext> all = new ArrayList<>();
        all.add(new BaseAllocation());
        for (String baseline : device.baselines()) {
            all.add(new ChangedSince(CHANGED_PREFIX + baseline, baseline));
        }
        if (qemuContexts) {
            all.add(new AllocationDepth());
            for (String baseline : device.baselines()) {
                all.add(new ChangedSince(DIRTY_BITMAP_PREFIX + baseline, baseline));
            }
        }
        return all;
    }

    /**
     * The contexts of {@code offered} that {@code queries} select, in offered order: a query that
     * ends in {@code :} selects every context whose name starts with it ({@code base:}, {@code
     * qemu:dirty-bitmap:}), any other the context of that name; a query that selects nothing (an
     * unknown namespace) is ignored. No queries: everything for LIST, nothing for SET.
     */
    static List<MetaContext> select(List<MetaContext> offered, List<String> queries, boolean list) {
        if (queries.isEmpty()) {
            return list ? offered : List.of();
        }
        List<MetaContext> chosen = new ArrayList<>();
        for (MetaContext c : offered) {
            for (String q : queries) {
                if (q.endsWith(":") ? c.name().startsWith(q) : c.name().equals(q)) {
                    chosen.add(c);
                    break;
                }
            }
        }
        return chosen;
    }
}
