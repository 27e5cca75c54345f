package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.daemon.DaemonConfig;
import dmsnap.ffm.Errno;
import java.io.IOException;
import java.io.PrintWriter;
import picocli.CommandLine.Model.CommandSpec;

/** Sends a request to the daemon and prints the answer as dmsetup would; the one exit-code mapping. */
final class DaemonRequests {
    static final int NO_DEVICE = 3;
    static final int BUSY = 4;
    static final int PERMISSION = 5;
    static final int NO_DAEMON = 6;

    private DaemonRequests() {
    }

    static int run(CommandSpec spec, ClientOptions options, ControlRequest request) {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ControlClient client = new ControlClient(new DaemonConfig(options.runDir(), null).controlSocket());
        ControlResponse response;
        try {
            response = client.send(request);
        } catch (IOException e) {
            if (permissionDenied(e)) {
                // The kernel's answer at connect (run directory or socket mode): not this user's daemon.
                err.println("dmsnap: permission denied: user " + System.getProperty("user.name") + " may not use "
                        + client.socketPath() + " (only root and the daemon's user may control it)");
                return PERMISSION;
            }
            err.println("dmsnap: cannot reach the daemon at " + client.socketPath() + ": " + e.getMessage()
                    + " (start it with: dmsnap daemon --run-dir " + options.runDir() + ")");
            return NO_DAEMON;
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
            case ControlResponse.Failure f -> {
                String text = errnoText(f.errno());
                err.println("dmsnap: " + f.operation() + (request.name() == null ? "" : " on " + request.name())
                        + " failed: " + text);
                if (f.reason() != null && !f.reason().isEmpty()) {
                    err.println("dmsnap: " + f.reason());
                }
                yield switch (f.errno()) {
                    case "ENXIO", "ENODEV" -> NO_DEVICE;
                    case "EBUSY" -> BUSY;
                    case "EACCES", "EPERM" -> PERMISSION;
                    default -> ExitCodes.FAILED;
                };
            }
        };
    }

    /**
     * EACCES from connect: the JDK gives no errno for a Unix socket, only its text (as a
     * {@link java.net.SocketException}, a BindException today).
     */
    static boolean permissionDenied(IOException e) {
        return e instanceof java.nio.file.AccessDeniedException
                || e instanceof java.net.SocketException && Errno.EACCES.text().equals(e.getMessage());
    }

    private static String errnoText(String name) {
        try {
            return Errno.valueOf(name).text();
        } catch (IllegalArgumentException e) {
            return name;
        }
    }
}
