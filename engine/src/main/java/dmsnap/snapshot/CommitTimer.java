package dmsnap.snapshot;

import java.time.Duration;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Runs a snapshot's deferred commits once the commit interval has passed (the cache modes
 * {@code none} and {@code writeback}): what a FLUSH did not commit is committed at the latest
 * then, as ext4 commits its journal every 5 s. The daemon gives one over its scheduler and
 * {@code --commit-interval}; tests run the tasks by hand.
 */
@FunctionalInterface
public interface CommitTimer {
    /** ext4's default commit interval. */
    Duration DEFAULT_INTERVAL = Duration.ofSeconds(5);

    /**
     * Runs {@code task} once, one interval from now, on a thread of the timer's (never on the
     * caller's: the caller may hold a snapshot's lock). The task must be quick to start; it may
     * run a commit round.
     */
    void schedule(Runnable task);

    /** A timer over {@code scheduler}, running each task {@code interval} after it was scheduled. */
    static CommitTimer over(ScheduledExecutorService scheduler, Duration interval) {
        long nanos = interval.toNanos();
        return task -> scheduler.schedule(task, nanos, TimeUnit.NANOSECONDS);
    }

    /**
     * The engine's default: {@link #DEFAULT_INTERVAL} on one daemon thread shared by every
     * snapshot of the process that was not given a timer of its own.
     */
    static CommitTimer shared() {
        return task -> SharedCommitTimer.TIMER.schedule(task); // its thread starts with the first deferred commit
    }
}
