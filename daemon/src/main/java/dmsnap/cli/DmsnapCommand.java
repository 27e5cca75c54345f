package dmsnap.cli;

import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The top-level {@code dmsnap} command: the global options, and the subcommands. As with
 * dmsetup and LVM, a global option may come before the verb ({@code dmsnap --run-dir DIR ls})
 * or after it ({@code dmsnap ls --run-dir DIR}). Each verb declares the global options it uses
 * (its help lists them); one given before the verb is handed to the verb's own option by
 * {@link Main#forwardGlobalOptions}, so both positions are checked and used the same way.
 */
@Command(
        name = "dmsnap",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = {
            "Linux device-mapper snapshots (dm-snapshot) in userspace: kernel-compatible COW",
            "devices, snapshot-origin/snapshot/snapshot-merge targets, served over NBD."
        },
        exitCodeListHeading = "%nExit status:%n",
        exitCodeList = {
            "0:success",
            "1:the command failed",
            "2:wrong arguments or options",
            "3:no such device",
            "4:the device is busy",
            "5:permission denied (not the daemon's user)",
            "6:no daemon at the run directory",
            "70:the bindings were not generated for this OS/architecture"
        },
        footer = {
            "",
            "Global options (--run-dir, --json, --verbose) may come before or after the verb.",
            "",
            "Examples:",
            "  ./dmsnap quickstart",
            "  ./dmsnap --run-dir /tmp/dmsnap-run ls",
            "  ./dmsnap --version"
        })
final class DmsnapCommand implements java.util.concurrent.Callable<Integer> {
    /**
     * The verbs, in the order of the usage. Added by {@link Main#commandLine} rather than named in
     * the annotation: picocli builds the model of every command it is given, about 0.2 s of a
     * command's start, so a command line builds only the verb it names.
     */
    static final java.util.List<Class<?>> VERBS = java.util.List.of(
            QuickstartCommand.class,
            DaemonCommand.class,
            DeviceCommands.Create.class,
            DeviceCommands.Load.class,
            DeviceCommands.Suspend.class,
            DeviceCommands.Resume.class,
            DeviceCommands.Clear.class,
            DeviceCommands.Remove.class,
            DeviceCommands.Rename.class,
            DeviceCommands.Status.class,
            DeviceCommands.TableCmd.class,
            DeviceCommands.Info.class,
            DeviceCommands.Ls.class,
            DeviceCommands.Targets.class,
            OriginCommand.class,
            SnapshotCommand.class,
            ChangedCommand.class,
            CowCommand.class,
            CompletionCommand.class);

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(
            names = {"-v", "--verbose"},
            description = "Print stack traces with errors.",
            scope = picocli.CommandLine.ScopeType.INHERIT)
    boolean verbose;

    /** Handed to the verb's own --run-dir (the daemon and every verb that talks to it). */
    @Option(
            names = "--run-dir",
            paramLabel = "DIR",
            description = "The daemon's run directory, for the daemon and the verbs that talk to it "
                    + "(env DMSNAP_RUN_DIR; default /run/dmsnap as root, else $XDG_RUNTIME_DIR/dmsnap).")
    Path runDir;

    /** Handed to the verb's own --json (the verbs that talk to the daemon, cow dump, cow check). */
    @Option(
            names = "--json",
            description = "Print JSON instead of text (the verbs that talk to the daemon, cow dump, cow check).")
    boolean json;

    /** Without a subcommand: the usage, and the status that says a command was missing. */
    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }
}
