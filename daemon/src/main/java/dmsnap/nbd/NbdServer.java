package dmsnap.nbd;

import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves every mapped device over NBD: always on a Unix socket ({@code RUN_DIR/nbd.sock}, mode
 * 0600, or 0660 with the group of {@link Access#group()}; peers checked with SO_PEERCRED, see
 * {@link PeerAccess}), on TCP only when asked. With TLS credentials, STARTTLS is offered on both;
 * TCP clients may or must use it as {@link Access#tcpTls()} says, while on the Unix socket, whose
 * peers the kernel names, it stays the client's choice. A TCP listener others can reach without
 * TLS and client certificates is warned about at start ({@link #exposureWarning}).
 * The export name is the device name; the empty name is the default export (the one named by
 * {@code --default-export}, else the only device). One platform thread per connection (plus one
 * for its replies); device I/O runs on a bounded pool of I/O threads (on the connection's
 * thread for a queue-depth-1 client); request buffers come from one {@link BufferPool} whose
 * budget bounds the memory of all requests in flight, shared so that clients that do not read
 * their replies cannot stall the others (each connection has a reserve of its own).
 *
 * <p>A watchdog closes connections whose handshake, request or reply is overdue
 * ({@code dmsnap.nbd.timeoutMs}, default 30 s); past {@code dmsnap.nbd.maxConnections}
 * connections (default 1024) new ones are closed at once.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    /**
     * Tunables, with the defaults the daemon uses.
     *
     * @param nanoClock the clock of the message and reply deadlines and of the watchdog that
     *                  enforces them: {@code System::nanoTime}; tests give one that moves only when
     *                  they move it, so that a deadline passes when they say, never because the
     *                  machine is slow
     * @param qemuContexts offer qemu's block-status contexts ({@code qemu:dirty-bitmap:S},
     *                  {@code qemu:allocation-depth}) beside dmsnap's: the daemon's {@code
     *                  --nbd-dirty-bitmaps}, off by default as the namespace is qemu's
     */
    public record Settings(
            Duration timeout,
            int maxConnections,
            int ioThreads,
            long bufferBudgetBytes,
            LongSupplier nanoClock,
            boolean qemuContexts,
            long pollNanos,
            long pollBusyNanos) {
        /** See {@link RequestPolling#DEFAULT_WINDOW_NANOS}. */
        public static final long DEFAULT_POLL_NANOS = RequestPolling.DEFAULT_WINDOW_NANOS;

        public Settings {
            Objects.requireNonNull(nanoClock, "nanoClock");
            if (pollNanos < 0 || pollBusyNanos < 0) {
                throw new IllegalArgumentException(
                        "a poll window cannot be negative: " + pollNanos + ", " + pollBusyNanos);
            }
        }

        public Settings(
                Duration timeout, int maxConnections, int ioThreads, long bufferBudgetBytes, LongSupplier nanoClock) {
            this(
                    timeout,
                    maxConnections,
                    ioThreads,
                    bufferBudgetBytes,
                    nanoClock,
                    false,
                    RequestPolling.DEFAULT_WINDOW_NANOS,
                    RequestPolling.BUSY_YIELD_NANOS);
        }

        /** The same with the {@code qemu:} contexts offered or not. */
        public Settings withQemuContexts(boolean offered) {
            return with(offered, pollNanos, pollBusyNanos);
        }

        /**
         * The same with another poll window: how long a connection's thread polls for a queue-depth-1
         * client's next request before it sleeps (see {@link RequestPolling}); 0: never.
         */
        public Settings withPollNanos(long nanos) {
            return withPolling(nanos, pollBusyNanos);
        }

        /**
         * The same with another poll window and another yield that counts as the CPU wanted by
         * another thread (see {@link NbdChannel#pollMessage}; tests poll on whatever the load).
         */
        public Settings withPolling(long windowNanos, long busyNanos) {
            return with(qemuContexts, windowNanos, busyNanos);
        }

        /** The same limits and clock with other protocol options (what the withers change). */
        private Settings with(boolean qemuContexts, long pollNanos, long pollBusyNanos) {
            return new Settings(
                    timeout,
                    maxConnections,
                    ioThreads,
                    bufferBudgetBytes,
                    nanoClock,
                    qemuContexts,
                    pollNanos,
                    pollBusyNanos);
        }

        /** With the system's clock. */
        public Settings(Duration timeout, int maxConnections, int ioThreads, long bufferBudgetBytes) {
            this(timeout, maxConnections, ioThreads, bufferBudgetBytes, System::nanoTime);
        }

        public static Settings defaults() {
            return new Settings(
                    Duration.ofMillis(Long.getLong("dmsnap.nbd.timeoutMs", 30_000)),
                    Integer.getInteger("dmsnap.nbd.maxConnections", 1024),
                    Integer.getInteger("dmsnap.nbd.ioThreads", 64),
                    Long.getLong("dmsnap.nbd.bufferBudgetBytes", 512L << 20));
        }
    }

    /**
     * Who may connect and how.
     *
     * @param group  null, or the group whose members may use the Unix socket too (mode 0660)
     * @param tls    null, or the TLS credentials: STARTTLS is offered
     * @param tcpTls on TCP: OFF (STARTTLS refused), ON (the client's choice), REQUIRE (options
     *               other than STARTTLS get NBD_REP_ERR_TLS_REQD until TLS runs)
     */
    public record Access(GroupPrincipal group, NbdTls tls, NbdTls.Mode tcpTls) {
        public static final Access OWNER_ONLY = new Access(null, null, NbdTls.Mode.OFF);

        public Access {
            if (tcpTls != NbdTls.Mode.OFF && tls == null) {
                throw new IllegalArgumentException("TLS mode " + tcpTls + " without credentials");
            }
        }
    }

    private final DeviceManager devices;
    private final String defaultExport;
    private final Access access;
    private final PeerAccess peers;
    private final Settings settings;
    private final Path socketPath;
    private final List<ServerSocketChannel> listeners = new ArrayList<>();
    private final List<Thread> acceptors = new ArrayList<>();
    private final InetSocketAddress tcpAddress;
    /**
     * Platform threads: a virtual thread blocked on its socket is woken through the poller, one
     * more thread hand-off per request.
     */
    private final ExecutorService connections = Executors.newThreadPerTaskExecutor(Thread.ofPlatform()
            .name("dmsnap-nbd-conn-", 1)
            .daemon(true)
            .stackSize(CONNECTION_STACK_BYTES)
            .factory());

    static final long CONNECTION_STACK_BYTES = 512 << 10;
    /** A 1 MiB read's reply goes into the socket in one write (capped by net.core.wmem_max). */
    private static final int SEND_BUFFER_BYTES = 4 << 20;

    private final ExecutorService ioThreads;
    private final BufferPool buffers;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment zeroes;
    private final Set<NbdChannel> open = ConcurrentHashMap.newKeySet();
    private final AtomicInteger connectionCount = new AtomicInteger();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong unexpectedErrors = new AtomicLong();
    /** Requests done on their connection's thread (see {@link NbdConnection}); for tests. */
    private final LongAdder inlineRequests = new LongAdder();

    private final LongAdder cachedReads = new LongAdder();

    private final RequestPolling polling;
    /** Connections the watchdog closed. */
    private final AtomicLong timedOut = new AtomicLong();
    /** Held for a watchdog pass: the scheduled passes and those tests run do not overlap. */
    private final ReentrantLock watchdogPass = new ReentrantLock();

    private final ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().name("dmsnap-nbd-watchdog").daemon(true).unstarted(r));
    private final AtomicBoolean closed = new AtomicBoolean();
    private final WarningLimit warnings = new WarningLimit();

    /**
     * Starts serving {@code devices}.
     *
     * @param socketPath    the Unix socket (a stale one is replaced: the caller holds the run directory)
     * @param tcp           a TCP address to listen on too, or null
     * @param defaultExport the device the empty export name selects, or null
     */
    public NbdServer(
            DeviceManager devices, Path socketPath, InetSocketAddress tcp, String defaultExport, Settings settings)
            throws IOException {
        this(devices, socketPath, tcp, defaultExport, settings, Access.OWNER_ONLY);
    }

    /**
     * Starts serving {@code devices} with {@code access}.
     *
     * @throws IOException one line: a listener cannot be opened, the socket cannot be given to the group
     */
    public NbdServer(
            DeviceManager devices,
            Path socketPath,
            InetSocketAddress tcp,
            String defaultExport,
            Settings settings,
            Access access)
            throws IOException {
        this.devices = devices;
        this.access = access;
        this.peers = new PeerAccess(System.getProperty("user.name"), access.group(), PeerAccess.GROUP_FILE);
        this.defaultExport = defaultExport;
        this.settings = settings;
        this.polling = RequestPolling.forCpus(
                settings.pollNanos(),
                settings.pollBusyNanos(),
                Runtime.getRuntime().availableProcessors());
        this.socketPath = socketPath;
        this.buffers = new BufferPool(
                settings.bufferBudgetBytes(),
                Math.min(settings.bufferBudgetBytes(), 128L << 20),
                settings.maxConnections());
        this.zeroes = arena.allocate(1 << 20, BufferPool.ALIGNMENT);
        AtomicInteger ioThread = new AtomicInteger();
        this.ioThreads = Executors.newFixedThreadPool(
                settings.ioThreads(),
                r -> Thread.ofPlatform()
                        .name("dmsnap-nbd-io-" + ioThread.incrementAndGet())
                        .daemon(true)
                        .unstarted(r));
        boolean ok = false;
        try {
            Files.deleteIfExists(socketPath);
            ServerSocketChannel unix = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            listeners.add(unix);
            // A backlog as deep as the connection limit: the default (50) makes a burst of clients that
            // connect without blocking (libnbd, virtual threads) fail with EAGAIN.
            unix.bind(UnixDomainSocketAddress.of(socketPath), settings.maxConnections());
            if (access.group() != null) {
                try {
                    Files.getFileAttributeView(socketPath, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
                            .setGroup(access.group());
                } catch (IOException e) {
                    throw new IOException(
                            "cannot give " + socketPath + " to group "
                                    + access.group().getName() + ": " + e.getMessage()
                                    + " (the daemon's user must be root or a member of it)",
                            e);
                }
            }
            Files.setPosixFilePermissions(
                    socketPath, PosixFilePermissions.fromString(access.group() == null ? "rw-------" : "rw-rw----"));
            acceptors.add(
                    Thread.ofPlatform().name("dmsnap-nbd-unix").daemon(true).start(() -> acceptLoop(unix, true)));
            InetSocketAddress bound = null;
            if (tcp != null) {
                ServerSocketChannel inet = ServerSocketChannel.open();
                listeners.add(inet);
                inet.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                try {
                    inet.bind(tcp, settings.maxConnections());
                } catch (IOException e) {
                    throw new IOException(
                            "cannot listen for NBD on " + tcp.getHostString() + ":" + tcp.getPort() + ": "
                                    + e.getMessage(),
                            e);
                }
                bound = (InetSocketAddress) inet.getLocalAddress();
                String warning = exposureWarning(bound, access);
                if (warning != null) {
                    log.warn(warning);
                }
                acceptors.add(
                        Thread.ofPlatform().name("dmsnap-nbd-tcp").daemon(true).start(() -> acceptLoop(inet, false)));
            }
            this.tcpAddress = bound;
            long period = Math.max(10, Math.min(1000, settings.timeout().toMillis() / 4));
            watchdog.scheduleWithFixedDelay(this::closeOverdue, period, period, TimeUnit.MILLISECONDS);
            ok = true;
        } finally {
            if (!ok) {
                close();
            }
        }
        log.info(
                "NBD on {} ({}){}{}",
                socketPath,
                peers.whoMay(),
                tcpAddress == null
                        ? ""
                        : " and tcp " + hostPort(tcpAddress) + " (TLS "
                                + access.tcpTls().name().toLowerCase(java.util.Locale.ROOT) + ")",
                access.tls() == null ? "" : "; TLS certificate " + access.tls().describe());
    }

    /**
     * The warning for a TCP listener at {@code bound} that is reachable from the network (not
     * loopback) where TLS does not keep strangers out; null when there is nothing to warn about.
     */
    static String exposureWarning(InetSocketAddress bound, Access access) {
        if (bound.getAddress() != null && bound.getAddress().isLoopbackAddress()) {
            return null;
        }
        String where = "NBD on " + hostPort(bound) + " is reachable from the network; ";
        return switch (access.tcpTls()) {
            case OFF -> where + "without --tls-cert anyone who can reach it can read and write every device";
            case ON ->
                where + "with --tls=on clients may still connect without TLS: anyone who can reach it can read"
                        + " and write every device (--tls=require with --tls-ca keeps them out)";
            case REQUIRE ->
                access.tls().verifiesPeer()
                        ? null
                        : where + "TLS is required, but without --tls-ca any"
                                + " client that can reach it can read and write every device";
        };
    }

    private static String hostPort(InetSocketAddress a) {
        String host = a.getHostString();
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    public Path socketPath() {
        return socketPath;
    }

    /** The TCP address actually bound (port 0 picks one), or null. */
    public InetSocketAddress tcpAddress() {
        return tcpAddress;
    }

    /** The {@code nbd+unix://} URI of an export. */
    public String unixUri(String export) {
        return "nbd+unix:///" + export + "?socket=" + socketPath;
    }

    /** Connections being served now. */
    public int connectionCount() {
        return connectionCount.get();
    }

    /** Bytes of request buffers in use now, and the most ever (for memory measurements). */
    public long bufferBytesInUse() {
        return buffers.inUseBytes();
    }

    public long bufferBytesHighWater() {
        return buffers.highWaterBytes();
    }

    /** Each connection's reserve of request buffers (see {@link BufferPool}). */
    long bufferReserveBytes() {
        return buffers.reserveBytes();
    }

    /** Exceptions no client should be able to cause (server bugs), logged as errors; counted for tests. */
    long unexpectedErrors() {
        return unexpectedErrors.get();
    }

    /** Requests done on their connection's thread, without a hand-off to an I/O thread (for tests). */
    long inlineRequests() {
        return inlineRequests.sum();
    }

    /**
     * Reads served on their connection's thread from the page cache, without a hand-off to an I/O
     * thread (see {@link NowaitReads}; for tests and metrics).
     */
    long cachedReads() {
        return cachedReads.sum();
    }

    /** Requests whose first bytes a poll found (see {@link RequestPolling}; for tests). */
    long polledRequests() {
        return polling.caught();
    }

    /** Connections polling for their next request now (for tests). */
    int pollingNow() {
        return polling.polling();
    }

    /** Connections the watchdog has closed (for tests). */
    long timedOut() {
        return timedOut.get();
    }

    /** How many connections have a deadline running now (see {@link #deadlinePeers}). */
    int deadlinesRunning() {
        return deadlinePeers().size();
    }

    /**
     * The peers ({@code nbd#N ...}) of the connections with a deadline running now: a message has
     * begun or a reply is being sent. A test waits until only the stalled one has one before it
     * moves the clock past the timeout.
     */
    List<String> deadlinePeers() {
        return peersOf(NbdChannel::deadlineRunning);
    }

    /**
     * The peers of the connections whose socket is open, in no particular order (for tests that
     * name a connection, or say which stayed).
     */
    List<String> openPeers() {
        return peersOf(NbdChannel::isOpen);
    }

    private List<String> peersOf(Predicate<NbdChannel> which) {
        List<String> peers = new ArrayList<>();
        for (NbdChannel c : open) {
            if (which.test(c)) {
                peers.add(c.peer());
            }
        }
        return peers;
    }

    private void acceptLoop(ServerSocketChannel listener, boolean unix) {
        while (!closed.get()) {
            SocketChannel client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                if (!closed.get()) {
                    log.warn("NBD accept failed: {}", e.getMessage());
                    try {
                        Thread.sleep(100); // e.g. out of file descriptors: do not spin
                    } catch (InterruptedException stop) {
                        return;
                    }
                }
                continue;
            }
            long id = accepted.incrementAndGet();
            if (connectionCount.incrementAndGet() > settings.maxConnections()) {
                connectionCount.decrementAndGet();
                warn("NBD: refused a connection: already {} (dmsnap.nbd.maxConnections){}", settings.maxConnections());
                closeQuietly(client);
                continue;
            }
            try {
                connections.submit(() -> serve(client, id, unix));
            } catch (java.util.concurrent.RejectedExecutionException e) {
                connectionCount.decrementAndGet();
                closeQuietly(client);
            }
        }
    }

    private void serve(SocketChannel client, long id, boolean unix) {
        String peer = "nbd#" + id;
        NbdChannel channel = null;
        try {
            NbdHandshake.Policy policy;
            if (unix) {
                UnixDomainPrincipal principal = client.getOption(ExtendedSocketOptions.SO_PEERCRED);
                String user = principal.user().getName();
                peer += " (" + user + ")";
                if (peers.allows(principal)) {
                    policy = new NbdHandshake.Policy(access.tls(), false, null);
                    client.setOption(StandardSocketOptions.SO_SNDBUF, SEND_BUFFER_BYTES);
                } else {
                    // Answered, not just closed: the client can tell its user why.
                    warn(
                            "NBD: refused a connection from user {} (only {} may use {}){}",
                            user,
                            peers.whoMay(),
                            socketPath);
                    policy = NbdHandshake.Policy.refuse(
                            "permission denied: user " + user + " may not use this daemon's exports");
                }
            } else {
                client.setOption(StandardSocketOptions.TCP_NODELAY, true);
                peer += " (" + client.getRemoteAddress() + ")";
                policy = switch (access.tcpTls()) {
                    case OFF -> NbdHandshake.Policy.PLAIN;
                    case ON -> new NbdHandshake.Policy(access.tls(), false, null);
                    case REQUIRE -> new NbdHandshake.Policy(access.tls(), true, null);
                };
            }
            channel = new NbdChannel(client, peer, settings.timeout().toNanos(), settings.nanoClock());
            open.add(channel);
            if (closed.get()) {
                return;
            }
            NbdHandshake.Result result =
                    new NbdHandshake(channel, exports(), zeroes, policy, settings.qemuContexts()).negotiate();
            if (result == null) {
                return;
            }
            log.info(
                    "{}: serving {} ({} bytes{}{})",
                    peer,
                    result.export().name(),
                    result.export().sizeBytes(),
                    result.structuredReplies() ? ", structured replies" : "",
                    channel.tls() == null ? "" : ", " + channel.tls().describe());
            new NbdConnection(
                            channel,
                            result,
                            ioThreads,
                            buffers,
                            unexpectedErrors,
                            inlineRequests,
                            cachedReads,
                            polling,
                            this::warn)
                    .serve();
            log.info("{}: done with {}", peer, result.export().name());
        } catch (IOException e) {
            if (channel != null && !channel.isOpen()) {
                log.info("{}: connection closed during the handshake: {}", peer, e.getMessage());
            } else {
                warn("{}: handshake failed: {}{}", peer, e.getMessage());
            }
        } catch (RuntimeException e) {
            unexpectedErrors.incrementAndGet();
            log.error("{}: connection failed", peer, e);
        } finally {
            if (channel != null) {
                open.remove(channel);
                channel.close();
            }
            closeQuietly(client);
            connectionCount.decrementAndGet();
        }
    }

    private NbdHandshake.Exports exports() {
        return new NbdHandshake.Exports() {
            @Override
            public MappedDevice resolve(String name) throws NbdHandshake.NoSuchExportException {
                MappedDevice device;
                if (name.isEmpty()) {
                    device = defaultDevice();
                } else {
                    device = devices.find(name);
                    if (device == null) {
                        throw new NbdHandshake.NoSuchExportException("no device named '" + printable(name) + "'");
                    }
                }
                if (device.liveTable() == null) {
                    throw new NbdHandshake.NoSuchExportException("device " + device.name() + " has no live table");
                }
                return device;
            }

            @Override
            public List<MappedDevice> list() {
                return devices.list().stream()
                        .filter(d -> d.liveTable() != null)
                        .toList();
            }
        };
    }

    private MappedDevice defaultDevice() throws NbdHandshake.NoSuchExportException {
        if (defaultExport != null) {
            MappedDevice device = devices.find(defaultExport);
            if (device == null) {
                throw new NbdHandshake.NoSuchExportException("the default export " + defaultExport + " does not exist");
            }
            return device;
        }
        List<MappedDevice> all = devices.list();
        if (all.size() == 1) {
            return all.getFirst();
        }
        throw new NbdHandshake.NoSuchExportException(
                all.isEmpty()
                        ? "there are no devices"
                        : "no default export among " + all.size() + " devices ("
                                + String.join(
                                        ", ",
                                        all.stream().map(MappedDevice::name).toList()) + "): name one");
    }

    /**
     * Logs a warning about a client unless too many came lately ({@link WarningLimit}); the last
     * {@code {}} of {@code format} takes the count of those left out.
     */
    void warn(String format, Object... args) {
        String leftOut = warnings.allow();
        if (leftOut != null) {
            Object[] all = java.util.Arrays.copyOf(args, args.length + 1);
            all[args.length] = leftOut;
            log.warn(format, all);
        }
    }

    /**
     * One pass of the watchdog: closes the connections whose message or reply is overdue by the
     * clock now. Run every quarter of the timeout (10 ms .. 1 s); tests run one themselves after
     * moving their clock. Passes do not overlap, so each connection is counted once.
     */
    void closeOverdue() {
        watchdogPass.lock();
        try {
            long now = settings.nanoClock().getAsLong();
            for (NbdChannel c : open) {
                if (c.closeIfOverdue(now)) {
                    timedOut.incrementAndGet();
                    warn(
                            "{}: closed: a message or reply took longer than {} ms{}",
                            c.peer(),
                            settings.timeout().toMillis());
                }
            }
        } finally {
            watchdogPass.unlock();
        }
    }

    /** {@code s} with control characters escaped: a name a client chose goes into the log and back to it. */
    static String printable(String s) {
        StringBuilder b = new StringBuilder(s.length());
        s.codePoints().forEach(c -> {
            if (Character.isISOControl(c) || c == 0x2028 || c == 0x2029) {
                b.append(String.format("\\u%04x", c));
            } else {
                b.appendCodePoint(c);
            }
        });
        return b.toString();
    }

    private static void closeQuietly(SocketChannel client) {
        try {
            client.close();
        } catch (IOException e) {
            // Dropping a connection; nobody to tell.
        }
    }

    /**
     * Stops: no new connections; every connection stops reading, its requests in flight finish and
     * are answered, then it is closed (waiting at most the timeout); then the I/O threads and buffers go.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        for (ServerSocketChannel l : listeners) {
            try {
                l.close();
            } catch (IOException e) {
                log.warn("closing an NBD listener: {}", e.getMessage());
            }
        }
        open.forEach(NbdChannel::shutdownInput);
        connections.shutdown();
        ioThreads.shutdown();
        boolean done = false;
        try {
            done = connections.awaitTermination(settings.timeout().toMillis(), TimeUnit.MILLISECONDS);
            if (!done) {
                // Requests parked on a suspended device, or clients that do not take their replies:
                // interrupt them (they are answered ESHUTDOWN where the socket still takes it).
                open.forEach(NbdChannel::close);
                connections.shutdownNow();
                ioThreads.shutdownNow();
                done = connections.awaitTermination(settings.timeout().toMillis(), TimeUnit.MILLISECONDS);
            }
            done &= ioThreads.awaitTermination(settings.timeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        watchdog.shutdownNow();
        if (done) {
            buffers.close();
            arena.close();
        } else {
            log.warn("NBD: some requests did not end; their buffers are left to the process exit");
        }
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            log.warn("removing {}: {}", socketPath, e.getMessage());
        }
    }
}
