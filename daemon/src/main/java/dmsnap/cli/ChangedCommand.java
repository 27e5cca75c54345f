package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.daemon.DaemonConfig;
import dmsnap.table.TableLine;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dmsnap changed SNAP [DEVICE]}: the byte ranges of DEVICE (by default SNAP's origin)
 * that changed since SNAP was taken, from the map NBD clients read as {@code dmsnap:changed:SNAP}
 * (see README, "Incremental backup"). The lines are printed as the daemon sends them; the
 * {@code --json} document, whose total comes before its extents, when the last has come.
 */
@Command(
        name = "changed",
        description = {
            "Print the byte ranges changed since snapshot SNAP was taken, one \"OFFSET LENGTH\" line each:",
            "of DEVICE, or of SNAP's origin device. The map NBD clients read as dmsnap:changed:SNAP."
        },
        footer = {
            "",
            "Examples:",
            "  dmsnap changed vol-snap0            # what vol changed since vol-snap0",
            "  dmsnap changed vol-snap0 vol-snap1  # where vol-snap1 may differ from vol-snap0",
            "  dmsnap changed --json vol-snap0"
        })
final class ChangedCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ClientOptions options;

    @Parameters(index = "0", paramLabel = "SNAP")
    String snapshot;

    @Parameters(index = "1", arity = "0..1", paramLabel = "DEVICE")
    String device;

    @Override
    public Integer call() {
        String of = device;
        if (of == null) {
            DaemonSteps steps = new DaemonSteps(spec, options);
            try {
                of = originDevice(new DeviceTables(steps));
            } catch (StepFailed e) {
                return e.exitCode;
            }
            if (of == null) {
                return ExitCodes.FAILED;
            }
        }
        return print(ControlRequest.changed(of, snapshot));
    }

    /** Sends the request and prints the answer as it comes: lines, or the --json document at its end. */
    private int print(ControlRequest request) {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ControlClient client = new ControlClient(new DaemonConfig(options.runDir(), null).controlSocket());
        ChangedPrinter printer = options.json ? new ChangedDocument(out) : new ChangedLines(out);
        ControlResponse.Failure failure;
        try {
            failure = client.changed(request, printer);
        } catch (IOException e) {
            if (!printer.started()) {
                return DaemonRequests.cannotConnect(err, client.socketPath(), options.runDir(), e);
            }
            printer.cutShort();
            out.flush();
            err.println("dmsnap: changed on " + request.name() + " failed: " + e.getMessage());
            return ExitCodes.FAILED;
        }
        if (failure != null) {
            printer.cutShort();
        }
        out.flush();
        return failure == null ? ExitCodes.OK : DaemonRequests.failed(err, client.socketPath(), request, failure);
    }

    /** The one origin device over SNAP's origin, or null (said why). */
    private String originDevice(DeviceTables tables) throws StepFailed {
        TableLine table = tables.tableOf(snapshot);
        if (!table.targetType().equals("snapshot")) {
            spec.commandLine().getErr().println("dmsnap: " + snapshot + " is not a snapshot");
            return null;
        }
        List<String> origins = tables.originsOf(table.args().getFirst());
        if (origins.size() != 1) {
            spec.commandLine()
                    .getErr()
                    .println("dmsnap: " + snapshot + "'s origin " + table.args().getFirst() + " has " + origins.size()
                            + " origin devices; name the device to compare");
            return null;
        }
        return origins.getFirst();
    }
}
