package dmsnap.target;

/** Takes the runs of a change map in order ({@link Target#changedRuns}); false stops the walk. */
@FunctionalInterface
public interface ChangeSink {
    boolean accept(long sectors, boolean changed);
}
