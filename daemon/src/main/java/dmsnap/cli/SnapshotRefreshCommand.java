package dmsnap.cli;

import dmsnap.control.ControlRequest;
import dmsnap.table.TableLine;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap snapshot refresh} (lvchange --refresh): the same table reloaded, the live store handed over. */
@Command(
        name = "refresh",
        description = {
            "Reload a snapshot's identical table and resume it: the live store is handed over",
            "(lvchange --refresh). When the reloaded table would not take the store over (its COW path now names",
            "another file), the reload is cleared and the snapshot left as it was."
        },
        footer = {"", "Example:", "  dmsnap snapshot refresh vol-snap"})
final class SnapshotRefreshCommand implements Callable<Integer> {
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
            TableLine live = tables.tableOf(name);
            String table = live.toString();
            steps.run(
                    "loaded " + name + ": " + table,
                    new ControlRequest("load", name, table, null, null, false, false, false, false, false));
            if (!live.targetType().equals("snapshot") && !live.targetType().equals("snapshot-merge")) {
                steps.run("resumed " + name, ControlRequest.of("resume", name));
                return ExitCodes.OK;
            }
            // Until its resume a handover destination has chunk size 0 (spec 6.2): the one sign
            // of whether the new table takes the live store over or has read the COW afresh.
            if (!tables.tableOf(name, true).args().get(3).equals("0")) {
                steps.run(null, ControlRequest.of("clear", name));
                // Not a destination: no live instance on that origin has that COW any more.
                spec.commandLine()
                        .getErr()
                        .println("dmsnap: " + name + ": the reloaded table did not take over the"
                                + " live exception store: its origin "
                                + live.args().get(0) + " or COW " + live.args().get(1) + " now names"
                                + " another file than the live table's (was one replaced?); cleared the inactive table, "
                                + name + " is unchanged");
                return ExitCodes.FAILED;
            }
            steps.run("resumed " + name + " (exception store handed over)", ControlRequest.of("resume", name));
            return ExitCodes.OK;
        } catch (StepFailed e) {
            return e.exitCode;
        }
    }
}
