package dmsnap.cli;

import dmsnap.control.ControlRequest;
import dmsnap.table.TableLine;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap snapshot remove} (lvremove): the snapshot removed with every origin over its origin device suspended. */
@Command(
        name = "remove",
        description = "Remove a snapshot with its origin suspended around it.",
        footer = {"", "Example:", "  dmsnap snapshot remove vol-snap"})
final class SnapshotRemoveCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ClientOptions options;

    @Parameters(index = "0", paramLabel = "SNAP")
    String name;

    @Override
    public Integer call() {
        DaemonSteps steps = new DaemonSteps(spec, options);
        DeviceTables tables = new DeviceTables(steps);
        try {
            TableLine table = tables.tableOf(name);
            if (!table.targetType().equals("snapshot")) {
                spec.commandLine().getErr().println("dmsnap: " + name + " is not a snapshot");
                return ExitCodes.FAILED;
            }
            List<String> origins = tables.originsOf(table.args().getFirst());
            for (String o : origins) {
                steps.run("suspended origin " + o, ControlRequest.of("suspend", o));
            }
            try {
                steps.run("removed snapshot " + name, ControlRequest.of("remove", name));
            } finally {
                for (String o : origins) {
                    steps.run("resumed origin " + o, ControlRequest.of("resume", o));
                }
            }
            return ExitCodes.OK;
        } catch (StepFailed e) {
            return e.exitCode;
        }
    }
}
