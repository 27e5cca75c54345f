package dmsnap.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code dmsnap origin}: origin devices the LVM way (an LVM-style convenience, as {@link SnapshotCommand}). */
@Command(name = "origin", description = "Origin devices.", subcommands = OriginCreateCommand.class)
final class OriginCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }
}
