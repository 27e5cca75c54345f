package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.daemon.DaemonConfig;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Sends a request to the daemon and prints the answer as dmsetup would. The one place that words
 * what went wrong talking to the daemon (every verb, plain or LVM-style, prints these lines); the
 * exit statuses are {@link ExitCodes}'.
 */
final class DaemonRequests {
    /** The operation of the daemon's answer to a peer it refuses by SO_PEERCRED (ControlServer). */
    private static final String CONNECT = "connect";

    private DaemonRequests() {}

    static int run(CommandSpec spec, ClientOptions options, ControlRequest request) {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ControlClient client = new ControlClient(new DaemonConfig(options.runDir(), null).controlSocket());
        ControlResponse response;
        try {
            response = client.send(request);
        } catch (IOException e) {
            return cannotConnect(err, client.socketPath(), options.runDir(), e);
        }
        return switch (response) {
            case ControlResponse.Success s -> {
                if (options.json) {
                    out.println(s.data() == null ? "{}" : Json.writePretty(s.data()));
                } else {
                    s.lines().forEach(out::println);
                }
                yield ExitCodes.OK;
            }
            case ControlResponse.Failure f -> failed(err, client.socketPath(), request, f);
        };
    }

    /**
     * A connection to {@code socket} that failed: one line saying why, and the exit status. Only a
     * socket that is missing or that nothing listens on is advised to start a daemon: a socket this
     * user may not use is not helped by one.
     */
    static int cannotConnect(PrintWriter err, Path socket, Path runDir, IOException e) {
        Errno errno = Errno.of(e);
        int status = ExitCodes.ofConnect(errno);
        if (status == ExitCodes.PERMISSION) {
            err.println(refused(socket, errno.text()));
        } else if (errno == Errno.ENOENT || errno == Errno.ECONNREFUSED) {
            err.println("dmsnap: cannot reach the daemon at " + socket + ": " + errno.text()
                    + " (start it with: dmsnap daemon --run-dir " + runDir + ")");
        } else {
            err.println("dmsnap: cannot reach the daemon at " + socket + ": "
                    + (errno == Errno.UNKNOWN ? e.getMessage() : errno.text()));
        }
        return status;
    }

    /** The daemon's failure answer to {@code request}: printed (the kernel's reason on a line of its own), and the exit status. */
    static int failed(PrintWriter err, Path socket, ControlRequest request, ControlResponse.Failure f) {
        if (CONNECT.equals(f.operation()) && ExitCodes.ofConnect(f.errno()) == ExitCodes.PERMISSION) {
            // The daemon refused this user (SO_PEERCRED) where the kernel let it connect (CAP_DAC_OVERRIDE):
            // the same words as the kernel's refusal; the daemon logs its own.
            err.println(refused(socket, f.errnoText()));
            return ExitCodes.PERMISSION;
        }
        err.println("dmsnap: " + f.operation() + (request.name() == null ? "" : " on " + request.name()) + " failed: "
                + f.errnoText());
        if (f.reason() != null && !f.reason().isEmpty()) {
            err.println("dmsnap: " + f.reason());
        }
        return ExitCodes.ofErrno(f.errno());
    }

    /** A connection this user may not make; {@code why} is the errno's text. */
    private static String refused(Path socket, String why) {
        return "dmsnap: cannot use the daemon's control socket " + socket + " as user "
                + System.getProperty("user.name") + ": " + why + " (only root and the daemon's user may)";
    }
}
