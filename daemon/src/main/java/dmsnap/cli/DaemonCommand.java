package dmsnap.cli;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.nbd.NbdTls;
import dmsnap.net.ListenAddress;
import dmsnap.target.CacheMode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import sun.misc.Signal;

/** {@code dmsnap daemon}: runs the daemon in the foreground until SIGTERM or SIGINT. */
@Command(
        name = "daemon",
        description = {
            "Run the dmsnap daemon in the foreground: mapped devices, the control socket RUN_DIR/control.sock,",
            "and every device served over NBD on RUN_DIR/nbd.sock (nbd+unix:///NAME?socket=RUN_DIR/nbd.sock).",
            "SIGTERM or SIGINT stops it in order (suspend with flush, flush and close every store) with exit status 0."
        },
        footer = {
            "",
            "Example:",
            "  dmsnap daemon --run-dir /run/dmsnap --state-dir /var/lib/dmsnap",
            "  dmsnap daemon --nbd-listen 10809 --metrics 9100   # nbd://127.0.0.1:10809/NAME, http://127.0.0.1:9100/metrics",
            "  dmsnap daemon --nbd-listen 0.0.0.0:10809 --tls-cert server-cert.pem --tls-key server-key.pem \\",
            "      --tls-ca ca-cert.pem   # nbds://HOST:10809/NAME?tls-certificates=DIR, client certificates required",
            "  dmsnap daemon --nbd-group disk   # members of group disk may use RUN_DIR/nbd.sock"
        })
final class DaemonCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(
            names = "--run-dir",
            paramLabel = "DIR",
            description = {
                "Run directory (env DMSNAP_RUN_DIR; default /run/dmsnap as root, else $XDG_RUNTIME_DIR/dmsnap).",
                "Made with mode 0700; an existing one must be a real directory of the daemon's user with mode 0700."
            })
    Path runDir;

    @Option(
            names = "--state-dir",
            paramLabel = "DIR",
            description = {
                "Where device tables are recorded (before each change takes effect) and restored from at start.",
                "Made with mode 0700; an existing one must be a real directory of the daemon's user, writable by no one else."
            })
    Path stateDir;

    @Option(
            names = "--usage-warn",
            paramLabel = "PERCENT[,PERCENT...]",
            split = ",",
            defaultValue = "80,95",
            description = "Log a warning when a snapshot's COW usage crosses each threshold (default 80,95).")
    int[] usageWarn;

    @Option(
            names = "--autoextend-threshold",
            paramLabel = "PERCENT",
            defaultValue = "100",
            description =
                    "Grow a file-backed COW when its usage reaches PERCENT (100, the default, never), like LVM's snapshot_autoextend_threshold.")
    int autoextendThreshold;

    @Option(
            names = "--autoextend-percent",
            paramLabel = "PERCENT",
            defaultValue = "20",
            description = "Grow it by PERCENT of its size (default 20), like LVM's snapshot_autoextend_percent.")
    int autoextendPercent;

    @Option(
            names = "--nbd-listen",
            paramLabel = "[HOST:]PORT",
            converter = ListenAddressConverter.class,
            description = {
                "Serve NBD on TCP too (RUN_DIR/nbd.sock is always served). Only PORT: loopback (127.0.0.1);",
                "any other address only when named, e.g. 0.0.0.0:10809 (a warning at start unless --tls-cert and --tls-ca)."
            })
    ListenAddress nbdListen;

    @Option(
            names = "--nbd-group",
            paramLabel = "GROUP",
            description = {
                "Members of GROUP may use RUN_DIR/nbd.sock too (mode 0660 and the run directory 0710, both GROUP's).",
                "Members: processes running with GROUP, users listed in /etc/group. control.sock stays 0600."
            })
    String nbdGroup;

    @Option(
            names = "--tls-cert",
            paramLabel = "FILE",
            description = "TLS for NBD (STARTTLS): the server's certificate, then any intermediate ones (PEM).")
    Path tlsCert;

    @Option(
            names = "--tls-key",
            paramLabel = "FILE",
            description =
                    "The certificate's private key: PEM PKCS#8 (BEGIN PRIVATE KEY), RSA, EC or Ed25519, not encrypted.")
    Path tlsKey;

    @Option(
            names = "--tls-ca",
            paramLabel = "FILE",
            description = "Require TLS clients to present a certificate signed by a CA in FILE (PEM): verify-peer.")
    Path tlsCa;

    @Option(
            names = "--tls",
            paramLabel = "off|on|require",
            description = {
                "TLS on TCP: off (STARTTLS refused), on (the client chooses), require (every option but STARTTLS",
                "is refused until TLS runs). Default: require with --tls-cert, else off. On RUN_DIR/nbd.sock TLS is",
                "always the client's choice (its peers are known to the kernel)."
            })
    String tls;

    @Option(
            names = "--default-export",
            paramLabel = "NAME",
            description = "The device an NBD client gets for the empty export name (default: the only device).")
    String defaultExport;

    @Option(
            names = "--nbd-dirty-bitmaps",
            description = {
                "Offer qemu's block-status contexts too: qemu:dirty-bitmap:S (the chunks changed since snapshot S,",
                "as dmsnap:changed:S) and qemu:allocation-depth, for qemu-img and qemu's backup jobs."
            })
    boolean nbdDirtyBitmaps;

    @Option(
            names = "--nbd-poll-max-ns",
            paramLabel = "NS",
            defaultValue = "100000",
            description = {
                "Poll up to NS nanoseconds for a queue-depth-1 client's next request before sleeping, as",
                "QEMU's poll-max-ns (default ${DEFAULT-VALUE}; 0: never). Saves the wake-up of an idle CPU per",
                "request; costs CPU only while the client is quick to send."
            })
    long nbdPollNanos;

    @Option(
            names = "--metrics",
            paramLabel = "[HOST:]PORT",
            converter = ListenAddressConverter.class,
            description =
                    "Serve Prometheus metrics at http://HOST:PORT/metrics. Only PORT: loopback (127.0.0.1); "
                            + "any other address only when named, e.g. 0.0.0.0:9100 (no authentication: a trusted network only).")
    ListenAddress metrics;

    @Option(
            names = "--cache",
            paramLabel = "MODE",
            defaultValue = "writeback",
            converter = CacheModeConverter.class,
            description = {
                "When a snapshot write is acknowledged, as qemu-nbd's --cache (a create or load may name another):",
                "writeback (default, as qemu-nbd's): once its data is in the page cache, the origin read through",
                "it too; exceptions are committed at FLUSH (which writes the page cache back first), FUA, suspend,",
                "remove and at the latest after --commit-interval; none: the same with O_DIRECT;",
                "directsync: once data and exception are durable (the kernel's rule)."
            })
    CacheMode cache;

    @Option(
            names = "--commit-interval",
            paramLabel = "DURATION",
            defaultValue = "5s",
            converter = DurationConverter.class,
            description =
                    "Commit exceptions a FLUSH has not committed after at most DURATION (default 5s, as ext4): 500ms, 2s, 1m.")
    Duration commitInterval;

    @Override
    public Integer call() throws Exception {
        if (nbdPollNanos < 0 || nbdPollNanos > 1_000_000_000) {
            throw usage("--nbd-poll-max-ns: " + nbdPollNanos + " is not between 0 and 1000000000 (1 s)");
        }
        int[] thresholds = usageWarn.clone();
        java.util.Arrays.sort(thresholds);
        DaemonConfig config = new DaemonConfig(
                runDir != null ? runDir : DaemonConfig.defaultRunDir(),
                stateDir,
                new dmsnap.daemon.CowMonitor.Policy(thresholds, autoextendThreshold, autoextendPercent),
                new DaemonConfig.Nbd(nbdListen, defaultExport, nbdGroup, tlsConfig(), nbdDirtyBitmaps, nbdPollNanos),
                metrics,
                new DaemonConfig.Cache(cache, commitInterval));
        if (config.sameDirectories()) {
            throw usage(DaemonConfig.SAME_DIRECTORIES);
        }
        Daemon daemon = Daemon.start(config, VersionProvider.version());
        for (String signal : new String[] {"TERM", "INT"}) {
            Signal.handle(
                    new Signal(signal),
                    s -> Thread.ofPlatform().name("dmsnap-stop").start(daemon::stop));
        }
        daemon.awaitStop();
        return ExitCodes.OK;
    }

    /** The TLS options, checked together; null without TLS. */
    private DaemonConfig.Tls tlsConfig() {
        NbdTls.Mode mode;
        try {
            mode = tls == null ? (tlsCert != null ? NbdTls.Mode.REQUIRE : NbdTls.Mode.OFF) : NbdTls.Mode.parse(tls);
        } catch (IllegalArgumentException e) {
            throw usage("--tls: " + e.getMessage());
        }
        if ((tlsCert == null) != (tlsKey == null)) {
            throw usage(tlsCert == null ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key");
        }
        if (tlsCa != null && tlsCert == null) {
            throw usage("--tls-ca needs --tls-cert and --tls-key (the server's own certificate)");
        }
        if (mode == NbdTls.Mode.OFF) {
            if (tlsCert != null) {
                throw usage("--tls=off with --tls-cert: leave out one of them");
            }
            return null;
        }
        if (tlsCert == null) {
            throw usage("--tls=" + tls + " needs --tls-cert and --tls-key");
        }
        return new DaemonConfig.Tls(tlsCert, tlsKey, tlsCa, mode);
    }

    private CommandLine.ParameterException usage(String message) {
        return new CommandLine.ParameterException(spec.commandLine(), message);
    }

    /** picocli: {@code none}, {@code writeback} or {@code directsync}. */
    static final class CacheModeConverter implements CommandLine.ITypeConverter<CacheMode> {
        @Override
        public CacheMode convert(String value) {
            try {
                return CacheMode.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    /** picocli: a positive number with {@code ms}, {@code s} or {@code m} (seconds without a unit). */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        private static final java.util.regex.Pattern FORM = java.util.regex.Pattern.compile("(\\d{1,9})(ms|s|m)?");

        @Override
        public Duration convert(String value) {
            java.util.regex.Matcher m = FORM.matcher(value.trim());
            if (!m.matches() || Long.parseLong(m.group(1)) == 0) {
                throw new CommandLine.TypeConversionException(
                        "'" + value + "' is not a duration longer than 0 (such as 500ms, 5s or 1m)");
            }
            long n = Long.parseLong(m.group(1));
            String unit = m.group(2) == null ? "s" : m.group(2);
            return switch (unit) {
                case "ms" -> Duration.ofMillis(n);
                case "m" -> Duration.ofMinutes(n);
                default -> Duration.ofSeconds(n);
            };
        }
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
