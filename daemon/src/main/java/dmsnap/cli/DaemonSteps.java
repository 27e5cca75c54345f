package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.daemon.DaemonConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Runs the steps of an LVM-style command (origin, snapshot) against the daemon, printing each
 * that succeeded; a failed step is printed as the plain verbs print it and thrown as
 * {@link StepFailed} with the same exit status.
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

    /** Sends {@code request}; prints {@code description} (if any) when it succeeded; a failure is printed and thrown. */
    List<String> run(String description, ControlRequest request) throws StepFailed {
        List<String> lines = success(request).lines();
        if (description != null) {
            spec.commandLine().getOut().println(description);
        }
        return lines;
    }

    /**
     * Sends {@code request}; a failure is printed in the words and thrown with the exit status of
     * the plain verbs ({@link DaemonRequests}).
     */
    ControlResponse.Success success(ControlRequest request) throws StepFailed {
        PrintWriter err = spec.commandLine().getErr();
        ControlResponse response;
        try {
            response = client.send(request);
        } catch (IOException e) {
            throw new StepFailed(DaemonRequests.cannotConnect(err, client.socketPath(), options.runDir(), e));
        }
        if (response instanceof ControlResponse.Failure f) {
            throw new StepFailed(DaemonRequests.failed(err, client.socketPath(), request, f));
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
        spec.commandLine()
                .getErr()
                .println("dmsnap: the daemon at " + client.socketPath() + " gave an answer without the expected "
                        + type.getSimpleName() + " data (a daemon of another version?)");
        throw new StepFailed(ExitCodes.FAILED);
    }
}
