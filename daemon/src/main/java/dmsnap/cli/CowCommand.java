package dmsnap.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code dmsnap cow}: offline tools for persistent (P/PO) COW devices; no daemon needed. */
@Command(
        name = "cow",
        description = "Offline tools for persistent COW devices (files or block devices); no daemon needed.",
        subcommands = {CowFormatCommand.class, CowDumpCommand.class, CowCheckCommand.class, CowReadCommand.class},
        footer = {
            "",
            "Examples:",
            "  ./dmsnap cow format /img/cow --chunk-size 8 --size 4M",
            "  ./dmsnap cow dump /img/cow",
            "  ./dmsnap cow check /img/cow --origin /img/base",
            "  ./dmsnap cow read --origin /img/base --cow /img/cow --out /img/snapshot.raw"
        })
final class CowCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }
}
