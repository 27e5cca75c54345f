package dmsnap.daemon;

import java.net.InetSocketAddress;
import java.nio.file.Path;

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
 */
public record DaemonConfig(Path runDir, Path stateDir, CowMonitor.Policy cowPolicy, Nbd nbd, ListenAddress metrics) {

    /**
     * NBD: the Unix socket {@code RUN_DIR/nbd.sock} always.
     *
     * @param tcp           {@code --nbd-listen}: also listen on TCP here, or null
     * @param defaultExport {@code --default-export}: the device the empty export name selects, or null
     */
    public record Nbd(ListenAddress tcp, String defaultExport) {
        public static final Nbd UNIX_ONLY = new Nbd(null, null);

        /** The TCP address to bind, or null. */
        public InetSocketAddress tcpSocketAddress() {
            return tcp == null ? null : new InetSocketAddress(tcp.host(), tcp.port());
        }
    }

    public DaemonConfig(Path runDir, Path stateDir) {
        this(runDir, stateDir, CowMonitor.Policy.defaults(), Nbd.UNIX_ONLY, null);
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
        return xdg != null && !xdg.isBlank() ? Path.of(xdg, "dmsnap")
                : Path.of(System.getProperty("java.io.tmpdir"), "dmsnap-" + System.getProperty("user.name"));
    }

    public Path controlSocket() {
        return runDir.resolve("control.sock");
    }

    public Path nbdSocket() {
        return runDir.resolve("nbd.sock");
    }
}
