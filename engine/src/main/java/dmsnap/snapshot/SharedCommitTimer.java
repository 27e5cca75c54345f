package dmsnap.snapshot;

import java.util.concurrent.Executors;

/** {@link CommitTimer#shared()}'s scheduler: one daemon thread, made when the class is first used. */
final class SharedCommitTimer {
    static final CommitTimer TIMER = CommitTimer.over(
            Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform()
                    .name("dmsnap-commit-interval")
                    .daemon(true)
                    .unstarted(r)),
            CommitTimer.DEFAULT_INTERVAL);

    private SharedCommitTimer() {}
}
