package dmsnap.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code dmsnap snapshot}: LVM-style conveniences that run the right dmsetup sequences (with
 * {@code origin create}): a snapshot added while its origin is suspended (so the origin's split
 * boundary is recomputed at its resume), a refresh through the handover path (lvchange --refresh),
 * a removal with the origin suspended around it, an online merge (lvconvert --merge). Each step is
 * printed ({@link DaemonSteps}).
 */
@Command(
        name = "snapshot",
        description = "Snapshots the LVM way.",
        subcommands = {
            SnapshotCreateCommand.class,
            SnapshotRefreshCommand.class,
            SnapshotMergeCommand.class,
            SnapshotRemoveCommand.class
        })
final class SnapshotCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }
}
