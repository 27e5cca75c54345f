package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.daemon.DaemonConfig;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Runs the steps of an LVM-style command (origin, snapshot) against the daemon, printing each
 * that succeeded; a failed step is printed and thrown as {@link StepFailed} with its exit status.
 */
final class DaemonSteps {
    final CommandSpec spec;
    final ClientOptions options;
    final ControlClient client;

    DaemonSteps(CommandSpec spec, ClientOptions options) {
        this.spec = spec;
        this.options = options;
        this.client = new ControlClient(new DaemonConfig(options.runDir(), null).controlSocket());
    }

    /** Sends {@code request}; prints {@code description} when it succeeded; a failure is printed and thrown. */
    List<String> run(String description, ControlRequest request) throws StepFailed {
        List<String> lines = success(request, description).lines();
        if (description != null) {
            spec.commandLine().getOut().println(description);
        }
        return lines;
    }

    private static String text(String errno) {
        try {
            return Errno.valueOf(errno).text();
        } catch (IllegalArgumentException e) {
            return errno;
        }
    }

    /** Sends {@code request}; a failure is printed (as by {@link #run}) and thrown. */
    ControlResponse.Success success(ControlRequest request, String description) throws StepFailed {
        ControlResponse response;
        try {
            response = client.send(request);
        } catch (IOException e) {
            spec.commandLine().getErr().println("dmsnap: cannot reach the daemon at " + client.socketPath() + ": "
                    + e.getMessage());
            throw new StepFailed(DaemonRequests.NO_DAEMON);
        }
        if (response instanceof ControlResponse.Failure f) {
            PrintWriter err = spec.commandLine().getErr();
            err.println("dmsnap: " + description + ": " + f.operation() + " failed: " + text(f.errno()));
            if (!f.reason().isEmpty()) {
                err.println("dmsnap: " + f.reason());
            }
            throw new StepFailed(switch (f.errno()) {
                case "ENXIO", "ENODEV" -> DaemonRequests.NO_DEVICE;
                case "EBUSY" -> DaemonRequests.BUSY;
                default -> ExitCodes.FAILED;
            });
        }
        return (ControlResponse.Success) response;
    }

    /** The data of a success as a {@code type}; an answer without it is printed and thrown. */
    <T> T data(ControlResponse.Success s, Class<T> type) throws StepFailed {
        try {
            T data = s.data() == null ? null : Json.read(s.data(), type);
            if (data != null) {
                return data;
            }
        } catch (IOException e) {
            // Told below: an answer this command cannot read.
        }
        spec.commandLine().getErr().println("dmsnap: the daemon at " + client.socketPath()
                + " gave an answer without the expected " + type.getSimpleName() + " data (a daemon of another version?)");
        throw new StepFailed(ExitCodes.FAILED);
    }
}
