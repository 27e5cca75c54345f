package dmsnap.cli;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.daemon.ListenAddress;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import sun.misc.Signal;

/** {@code dmsnap daemon}: runs the daemon in the foreground until SIGTERM or SIGINT. */
@Command(name = "daemon",
        description = {"Run the dmsnap daemon in the foreground: mapped devices, the control socket RUN_DIR/control.sock,",
            "and every device served over NBD on RUN_DIR/nbd.sock (nbd+unix:///NAME?socket=RUN_DIR/nbd.sock).",
            "SIGTERM or SIGINT stops it in order (suspend with flush, flush and close every store) with exit status 0."},
        footer = {"", "Example:", "  dmsnap daemon --run-dir /run/dmsnap --state-dir /var/lib/dmsnap",
            "  dmsnap daemon --nbd-listen 10809 --metrics 9100   # nbd://127.0.0.1:10809/NAME, http://127.0.0.1:9100/metrics"})
final class DaemonCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--run-dir", paramLabel = "DIR",
            description = {"Run directory (env DMSNAP_RUN_DIR; default /run/dmsnap as root, else $XDG_RUNTIME_DIR/dmsnap).",
                "Made with mode 0700; an existing one must be a real directory of the daemon's user with mode 0700."})
    Path runDir;

    @Option(names = "--state-dir", paramLabel = "DIR",
            description = {"Where device tables are recorded (before each change takes effect) and restored from at start.",
                "Made with mode 0700; an existing one must be a real directory of the daemon's user, writable by no one else."})
    Path stateDir;

    @Option(names = "--usage-warn", paramLabel = "PERCENT[,PERCENT...]", split = ",", defaultValue = "80,95",
            description = "Log a warning when a snapshot's COW usage crosses each threshold (default 80,95).")
    int[] usageWarn;

    @Option(names = "--autoextend-threshold", paramLabel = "PERCENT", defaultValue = "100",
            description = "Grow a file-backed COW when its usage reaches PERCENT (100, the default, never), like LVM's snapshot_autoextend_threshold.")
    int autoextendThreshold;

    @Option(names = "--autoextend-percent", paramLabel = "PERCENT", defaultValue = "20",
            description = "Grow it by PERCENT of its size (default 20), like LVM's snapshot_autoextend_percent.")
    int autoextendPercent;

    @Option(names = "--nbd-listen", paramLabel = "[HOST:]PORT", converter = ListenAddressConverter.class,
            description = {"Serve NBD on TCP too (RUN_DIR/nbd.sock is always served). Only PORT: loopback (127.0.0.1);",
                "any other address only when named, e.g. 0.0.0.0:10809 (no TLS: a trusted network only)."})
    ListenAddress nbdListen;

    @Option(names = "--default-export", paramLabel = "NAME",
            description = "The device an NBD client gets for the empty export name (default: the only device).")
    String defaultExport;

    @Option(names = "--metrics", paramLabel = "[HOST:]PORT", converter = ListenAddressConverter.class,
            description = "Serve Prometheus metrics at http://HOST:PORT/metrics. Only PORT: loopback (127.0.0.1); "
                    + "any other address only when named, e.g. 0.0.0.0:9100 (no authentication: a trusted network only).")
    ListenAddress metrics;

    @Override
    public Integer call() throws Exception {
        int[] thresholds = usageWarn.clone();
        java.util.Arrays.sort(thresholds);
        DaemonConfig config = new DaemonConfig(runDir != null ? runDir : DaemonConfig.defaultRunDir(), stateDir,
                new dmsnap.daemon.CowMonitor.Policy(thresholds, autoextendThreshold, autoextendPercent),
                new DaemonConfig.Nbd(nbdListen, defaultExport), metrics);
        Daemon daemon = Daemon.start(config, VersionProvider.version());
        for (String signal : new String[] {"TERM", "INT"}) {
            Signal.handle(new Signal(signal), s -> Thread.ofPlatform().name("dmsnap-stop").start(daemon::stop));
        }
        daemon.awaitStop();
        return ExitCodes.OK;
    }

    /** picocli: a malformed --metrics value is a usage error naming the option. */
    static final class ListenAddressConverter implements CommandLine.ITypeConverter<ListenAddress> {
        @Override
        public ListenAddress convert(String value) {
            try {
                return ListenAddress.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
