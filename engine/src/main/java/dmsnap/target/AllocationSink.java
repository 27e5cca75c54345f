package dmsnap.target;

/**
 * Takes the allocation runs of a block status walk in order ({@link Target#allocationRuns}),
 * each as its sectors and its {@link Allocation#depth()}; false stops the walk.
 */
@FunctionalInterface
public interface AllocationSink {
    boolean accept(long sectors, int depth);
}
