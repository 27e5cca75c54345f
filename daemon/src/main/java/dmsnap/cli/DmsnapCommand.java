package dmsnap.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The top-level {@code dmsnap} command: shared options, and the subcommands. */
@Command(name = "dmsnap",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = {
            "Linux device-mapper snapshots (dm-snapshot) in userspace: kernel-compatible COW",
            "devices, snapshot-origin/snapshot/snapshot-merge targets, served over NBD."
        },
        subcommands = {QuickstartCommand.class, DaemonCommand.class,
            DeviceCommands.Create.class, DeviceCommands.Load.class, DeviceCommands.Suspend.class,
            DeviceCommands.Resume.class, DeviceCommands.Clear.class, DeviceCommands.Remove.class,
            DeviceCommands.Rename.class, DeviceCommands.Status.class, DeviceCommands.TableCmd.class,
            DeviceCommands.Info.class, DeviceCommands.Ls.class, DeviceCommands.Targets.class,
            LvmCommands.Origin.class, LvmCommands.Snapshot.class, CowCommand.class, CompletionCommand.class},
        footer = {"", "Examples:", "  ./dmsnap quickstart", "  ./dmsnap --version"})
final class DmsnapCommand implements java.util.concurrent.Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = {"-v", "--verbose"}, description = "Print stack traces with errors.", scope = picocli.CommandLine.ScopeType.INHERIT)
    boolean verbose;

    /** Without a subcommand: the usage, and the status that says a command was missing. */
    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }
}
