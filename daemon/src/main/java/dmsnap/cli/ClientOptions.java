package dmsnap.cli;

import dmsnap.daemon.DaemonConfig;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options every command that talks to the daemon shares. */
final class ClientOptions {
    @Option(
            names = "--run-dir",
            paramLabel = "DIR",
            description =
                    "The daemon's run directory (env DMSNAP_RUN_DIR; default /run/dmsnap as root, else $XDG_RUNTIME_DIR/dmsnap).")
    Path runDir;

    @Option(names = "--json", description = "Print JSON instead of dmsetup's text.")
    boolean json;

    Path runDir() {
        return runDir != null ? runDir : DaemonConfig.defaultRunDir();
    }
}
