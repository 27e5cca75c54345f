package dmsnap.daemon;

import dmsnap.nbd.NbdServer;
import dmsnap.net.ListenAddress;
import dmsnap.snapshot.CommitTimer;
import dmsnap.target.CacheMode;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Where the daemon lives: the run directory (control socket, lock) and the state directory. Both
 * must be the daemon's own: see {@link OwnedDirectory}.
 *
 * @param runDir   {@code --run-dir}, env {@code DMSNAP_RUN_DIR}; default /run/dmsnap as root,
 *                 else $XDG_RUNTIME_DIR/dmsnap; mode 0700
 * @param stateDir {@code --state-dir}: where device tables are recorded (null: not recorded);
 *                 writable by its owner only
 * @param cowPolicy COW usage warnings and autoextend
 * @param nbd       the NBD server's listeners and default export
 * @param metrics   {@code --metrics}: where Prometheus text is served (null: nowhere)
 * @param cache     {@code --cache} and {@code --commit-interval}: when snapshot writes are acknowledged
 */
public record DaemonConfig(
        Path runDir, Path stateDir, CowMonitor.Policy cowPolicy, Nbd nbd, ListenAddress metrics, Cache cache) {

    /**
     * The default cache mode of devices (a create or load may name another) and how long a
     * deferred exception may wait for its commit at most.
     *
     * @param mode           {@code --cache}; default {@code writeback}, the NBD contract (as qemu-nbd)
     * @param commitInterval {@code --commit-interval}; default 5 s, as ext4's journal
     */
    public record Cache(CacheMode mode, Duration commitInterval) {
        public static final Cache DEFAULTS = new Cache(CacheMode.WRITEBACK, CommitTimer.DEFAULT_INTERVAL);

        public Cache {
            java.util.Objects.requireNonNull(mode, "mode");
            if (commitInterval.isNegative() || commitInterval.isZero()) {
                throw new IllegalArgumentException("the commit interval must be longer than 0");
            }
        }
    }

    public DaemonConfig(Path runDir, Path stateDir, CowMonitor.Policy cowPolicy, Nbd nbd, ListenAddress metrics) {
        this(runDir, stateDir, cowPolicy, nbd, metrics, Cache.DEFAULTS);
    }

    /**
     * NBD: the Unix socket {@code RUN_DIR/nbd.sock} always.
     *
     * @param tcp           {@code --nbd-listen}: also listen on TCP here, or null
     * @param defaultExport {@code --default-export}: the device the empty export name selects, or null
     * @param group         {@code --nbd-group}: a group whose members may use the Unix socket too
     *                      (it gets mode 0660 and the group; the run directory 0710 and the group), or null
     * @param tls           {@code --tls-*}: TLS credentials and mode, or null
     * @param dirtyBitmaps  {@code --nbd-dirty-bitmaps}: offer qemu's block-status contexts
     *                      ({@code qemu:dirty-bitmap:S}, {@code qemu:allocation-depth}) too
     * @param pollNanos     {@code --nbd-poll-max-ns}: how long a connection polls for a queue-depth-1
     *                      client's next request before it sleeps; 0: never
     */
    public record Nbd(
            ListenAddress tcp, String defaultExport, String group, Tls tls, boolean dirtyBitmaps, long pollNanos) {
        public static final Nbd UNIX_ONLY = new Nbd(null, null);

        public Nbd(ListenAddress tcp, String defaultExport) {
            this(tcp, defaultExport, null, null);
        }

        public Nbd(ListenAddress tcp, String defaultExport, String group, Tls tls) {
            this(tcp, defaultExport, group, tls, false, NbdServer.Settings.DEFAULT_POLL_NANOS);
        }

        /** The TCP address to bind, or null. */
        public InetSocketAddress tcpSocketAddress() {
            return tcp == null ? null : new InetSocketAddress(tcp.host(), tcp.port());
        }
    }

    /**
     * TLS for NBD.
     *
     * @param cert {@code --tls-cert}: the server's certificate chain (PEM)
     * @param key  {@code --tls-key}: its private key (PKCS#8 PEM)
     * @param ca   {@code --tls-ca}: null, or CA certificates client certificates must chain to
     * @param tcp  {@code --tls}: whether TCP clients may (ON) or must (REQUIRE, the default) use TLS
     */
    public record Tls(Path cert, Path key, Path ca, dmsnap.nbd.NbdTls.Mode tcp) {
        public Tls {
            java.util.Objects.requireNonNull(cert, "cert");
            java.util.Objects.requireNonNull(key, "key");
            if (tcp == dmsnap.nbd.NbdTls.Mode.OFF) {
                throw new IllegalArgumentException("TLS credentials with TLS off");
            }
        }
    }

    public DaemonConfig(Path runDir, Path stateDir) {
        this(runDir, stateDir, CowMonitor.Policy.defaults(), Nbd.UNIX_ONLY, null);
    }

    /** Why a configuration whose run and state directories are one directory is refused. */
    public static final String SAME_DIRECTORIES = "--run-dir and --state-dir must be different directories";

    /**
     * Whether the run and state directories are one directory (by two names, maybe): each holds
     * its own lock file, and the daemon's second lock on it would look like another daemon's.
     */
    public boolean sameDirectories() {
        if (stateDir == null) {
            return false;
        }
        if (runDir.toAbsolutePath().normalize().equals(stateDir.toAbsolutePath().normalize())) {
            return true;
        }
        try {
            return java.nio.file.Files.isSameFile(runDir, stateDir);
        } catch (java.io.IOException e) {
            return false; // one of them does not exist yet: they are not the same
        }
    }

    /** The run directory a client or daemon uses when none is given. */
    public static Path defaultRunDir() {
        String env = System.getenv("DMSNAP_RUN_DIR");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        if ("root".equals(System.getProperty("user.name"))) {
            return Path.of("/run/dmsnap");
        }
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        return xdg != null && !xdg.isBlank()
                ? Path.of(xdg, "dmsnap")
                : Path.of(System.getProperty("java.io.tmpdir"), "dmsnap-" + System.getProperty("user.name"));
    }

    public Path controlSocket() {
        return runDir.resolve("control.sock");
    }

    public Path nbdSocket() {
        return runDir.resolve("nbd.sock");
    }
}
