package dmsnap.metrics;

import dmsnap.device.DeviceManager;
import dmsnap.net.ListenAddress;
import dmsnap.snapshot.CommitObserver;
import dmsnap.snapshot.InvalidationCause;
import dmsnap.store.ExceptionStore;
import dmsnap.store.copy.ChunkCopier;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's metrics: a registry of its own (not the library's global one, so two daemons in
 * one JVM, as in tests, do not mix), the commit latency histogram and the invalidation counter
 * the snapshot targets feed, the collectors that read devices, COW status and the copier at
 * scrape time, and the HTTP server that serves them as Prometheus text at {@code /metrics}.
 *
 * <p>Life cycle: built before the engine (its {@link #commits()} goes into the snapshot
 * targets), {@link #serve} once the device manager exists, {@link #close()} in the daemon's
 * orderly stop.
 */
public final class DaemonMetrics implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DaemonMetrics.class);

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final CommitObserver observer;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile HTTPServer server;
    private volatile int port = -1;

    public DaemonMetrics(ChunkCopier copier) {
        CommitLatency commits = new CommitLatency(registry);
        Invalidations invalidations = new Invalidations(registry);
        this.observer = new CommitObserver() {
            @Override
            public void committed(ExceptionStore store, long latencyNanos, boolean success) {
                commits.committed(store, latencyNanos, success);
            }

            @Override
            public void invalidated(String device, InvalidationCause cause) {
                invalidations.invalidated(cause);
            }
        };
        registry.register(new CopierCollector(copier));
    }

    /** What the snapshot targets tell about each exception commit and each invalidation. */
    public CommitObserver commits() {
        return observer;
    }

    /**
     * Adds the per-device collectors and starts serving {@code /metrics} on {@code address}.
     *
     * @return the port listened on (the chosen one when {@code address} says 0)
     * @throws IOException one line: the host is unknown or the port cannot be bound (taken,
     *                     or privileged)
     */
    public int serve(ListenAddress address, DeviceManager devices) throws IOException {
        if (server != null) {
            throw new IllegalStateException("metrics are served already");
        }
        InetAddress host;
        try {
            host = InetAddress.getByName(address.host());
        } catch (UnknownHostException e) {
            throw new IOException("metrics on " + address + ": unknown host " + address.host(), e);
        }
        registry.register(new DeviceIoCollector(devices));
        registry.register(new CowStatusCollector(devices));
        try {
            server = HTTPServer.builder()
                    .inetAddress(host)
                    .port(address.port())
                    .registry(registry)
                    .buildAndStart();
        } catch (IOException e) {
            throw new IOException("metrics on " + address + ": " + e.getMessage(), e);
        }
        port = server.getPort();
        if (host.isLoopbackAddress()) {
            log.info("serving metrics at http://{}/metrics", new ListenAddress(address.host(), port));
        } else {
            log.warn(
                    "serving metrics at http://{}/metrics on a non-loopback address: whoever reaches it can read "
                            + "device names and I/O counts",
                    new ListenAddress(address.host(), port));
        }
        return port;
    }

    /** The port {@code /metrics} is served on, -1 before {@link #serve}. */
    public int port() {
        return port;
    }

    /** The registry, for scraping in process. */
    public PrometheusRegistry registry() {
        return registry;
    }

    /** Stops the HTTP server; idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        HTTPServer s = server;
        if (s != null) {
            s.close();
        }
    }
}
