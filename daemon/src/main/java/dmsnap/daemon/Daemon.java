package dmsnap.daemon;

import dmsnap.control.ControlHandler;
import dmsnap.control.ControlServer;
import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.metrics.DaemonMetrics;
import dmsnap.nbd.NbdServer;
import dmsnap.nbd.NbdTls;
import dmsnap.snapshot.CommitObserver;
import dmsnap.snapshot.CommitTimer;
import dmsnap.snapshot.MergeSettings;
import dmsnap.snapshot.Registry;
import dmsnap.snapshot.SnapshotTargets;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.Table;
import dmsnap.table.TableLine;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.DeviceResolver;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.UserPrincipalNotFoundException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One dmsnap daemon: the run directory and the state directory, each the daemon's own and locked
 * (see {@link OwnedDirectory}: a second daemon on either is refused with the first one's pid),
 * the engine, and the control socket, whose changes are recorded in the state directory before
 * they take effect (see {@link StateStore}).
 * {@link #stop()} is the orderly shutdown: no new requests, every device suspended (which
 * drains I/O and waits for copies) and removed (every store flushed and closed), the copier
 * closed.
 */
public final class Daemon implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Daemon.class);

    private final DaemonConfig config;
    private final OwnedDirectory runDir;
    private final ChunkCopier copier;
    private final DeviceManager devices;
    private final ControlServer control;
    private final NbdServer nbd;
    private final StateStore state;
    /** Null without {@code --metrics}. */
    private final DaemonMetrics metrics;

    private final MergeFlows merges;
    private final java.util.concurrent.ScheduledExecutorService monitor =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r ->
                    Thread.ofPlatform().name("dmsnap-cow-monitor").daemon(true).unstarted(r));
    /** Runs the commit interval of deferred exceptions ({@code --commit-interval}); a task may run a commit round. */
    private final java.util.concurrent.ScheduledExecutorService commitInterval =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform()
                    .name("dmsnap-commit-interval")
                    .daemon(true)
                    .unstarted(r));

    private final AtomicBoolean stopped = new AtomicBoolean();
    private final CountDownLatch done = new CountDownLatch(1);

    private Daemon(
            DaemonConfig config, OwnedDirectory runDir, StateStore state, NbdServer.Access nbdAccess, String version)
            throws IOException {
        this.config = config;
        this.runDir = runDir;
        this.state = state;
        this.copier = new ChunkCopier(Math.max(2, Runtime.getRuntime().availableProcessors() * 2), 1 << 20);
        this.metrics = config.metrics() == null ? null : new DaemonMetrics(copier);
        this.devices = new DeviceManager(
                SnapshotTargets.register(
                        TargetTypes.withBasicTargets(),
                        new Registry(),
                        copier,
                        metrics == null ? CommitObserver.NONE : metrics.commits(),
                        MergeSettings.DEFAULTS,
                        CommitTimer.over(commitInterval, config.cache().commitInterval())),
                new BackingDevices(),
                config.cache().mode());
        if (metrics != null) {
            metrics.serve(config.metrics(), devices); // before any device exists: a taken port changes nothing
        }
        NbdServer nbdServer = null;
        boolean ok = false;
        try {
            if (state != null) {
                restore();
            }
            this.merges = new MergeFlows(devices, state);
            merges.restore();
            nbdServer = new NbdServer(
                    devices,
                    config.nbdSocket(),
                    config.nbd().tcpSocketAddress(),
                    config.nbd().defaultExport(),
                    NbdServer.Settings.defaults()
                            .withQemuContexts(config.nbd().dirtyBitmaps())
                            .withPollNanos(config.nbd().pollNanos()),
                    nbdAccess);
            this.nbd = nbdServer;
            this.control = new ControlServer(
                    config.controlSocket(),
                    new ControlHandler(devices, version, state == null ? DeviceRecorder.NONE : state, merges));
            ok = true;
        } finally {
            if (!ok) {
                commitInterval.shutdownNow();
                if (nbdServer != null) {
                    nbdServer.close();
                }
                if (metrics != null) {
                    metrics.close();
                }
            }
        }
        CowMonitor cows = new CowMonitor(devices, config.cowPolicy());
        monitor.scheduleWithFixedDelay(cows::check, 1, 1, java.util.concurrent.TimeUnit.SECONDS);
        monitor.scheduleWithFixedDelay(merges::check, 250, 250, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    /**
     * Brings back every recorded device: devices others stack on (dm:NAME) first, snapshots
     * before merging origins (a merge starts at its resume: every other snapshot must be active
     * by then, or the merge would overwrite chunks it never got), and those before origins (an
     * origin computes its split boundary when it resumes). A device that cannot come back (a
     * vanished backing file) is reported and skipped.
     */
    private void restore() throws IOException {
        List<StateStore.Recorded> records = new java.util.ArrayList<>(state.load());
        dropSnapshotsBeingMerged(records);
        List<Pending> pending = new java.util.ArrayList<>();
        for (StateStore.Recorded r : records) {
            pending.add(new Pending(r, parsedOrNull(r.table())));
        }
        pending.sort(java.util.Comparator.comparingInt(p -> restoreRank(p.table())));
        int restored = 0;
        while (!pending.isEmpty()) {
            Pending next = null;
            for (Pending p : pending) {
                boolean ready = pending.stream()
                        .noneMatch(o -> o != p && p.stacksOn(o.recorded().name()));
                if (ready) {
                    next = p;
                    break;
                }
            }
            if (next == null) {
                next = pending.getFirst(); // a cycle cannot load anyway; report it below
            }
            pending.remove(next);
            StateStore.Recorded r = next.recorded();
            try {
                devices.create(r.name(), r.uuid(), TableParser.parse(r.table()), r.readOnly(), r.cacheMode());
                restored++;
                log.info("{}: restored", r.name());
            } catch (TableLoadException | DmException e) {
                log.error("{}: not restored: {}", r.name(), e.getMessage());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while restoring devices", e);
            }
        }
        log.info("restored {} device(s) from {}", restored, config.stateDir());
    }

    /** A record waiting to be restored, with its table parsed (null: it does not parse, the load reports it). */
    private record Pending(StateStore.Recorded recorded, Table table) {
        /** Whether a line of the table names mapped device {@code name} ({@code dm:NAME}). */
        boolean stacksOn(String name) {
            return table != null && table.hasArgument(DeviceResolver.mappedArgument(name));
        }
    }

    private static Table parsedOrNull(String text) {
        try {
            return TableParser.parse(text);
        } catch (TableLoadException e) {
            return null; // restore reports it when it loads it
        }
    }

    /**
     * A snapshot whose COW a recorded snapshot-merge table merges is superseded by that merge: the
     * merge flow records the merge table before it drops the snapshot's record, so a crash in
     * between (or a failed unlink) leaves both, and the merge was decided before the origin
     * resumed, as with the kernel and LVM. Such a snapshot is not restored and its record goes.
     */
    private void dropSnapshotsBeingMerged(List<StateStore.Recorded> records) {
        Map<String, String> mergedCows = new HashMap<>(); // COW argument -> the merging origin
        for (StateStore.Recorded r : records) {
            TableLine line = singleLine(r.table(), "snapshot-merge");
            if (line != null) {
                mergedCows.put(line.args().get(1), r.name());
            }
        }
        if (mergedCows.isEmpty()) {
            return;
        }
        for (java.util.Iterator<StateStore.Recorded> it = records.iterator(); it.hasNext(); ) {
            StateStore.Recorded r = it.next();
            TableLine line = singleLine(r.table(), "snapshot");
            if (line == null) {
                continue;
            }
            String cow = line.args().get(1);
            for (Map.Entry<String, String> merge : mergedCows.entrySet()) {
                if (sameDevice(cow, merge.getKey())) {
                    it.remove();
                    log.warn("{}: not restored: its COW {} is being merged into {}", r.name(), cow, merge.getValue());
                    try {
                        state.forget(r.name());
                    } catch (IOException e) {
                        log.warn(
                                "{}: cannot remove its record from {}: {}",
                                r.name(),
                                config.stateDir(),
                                e.getMessage());
                    }
                    break;
                }
            }
        }
    }

    /** The single line of a recorded table if it is of {@code type} with origin and COW arguments, else null. */
    private static TableLine singleLine(String table, String type) {
        try {
            List<TableLine> lines = TableParser.parse(table).lines();
            TableLine line = lines.getFirst();
            return lines.size() == 1
                            && line.targetType().equals(type)
                            && line.args().size() >= 2
                    ? line
                    : null;
        } catch (TableLoadException e) {
            return null; // restore reports it when it loads it
        }
    }

    /** Whether two device arguments name the same device: the same text, or the same file by two paths. */
    private static boolean sameDevice(String a, String b) {
        if (a.equals(b)) {
            return true;
        }
        if (a.startsWith("dm:") || b.startsWith("dm:")) {
            return false;
        }
        try {
            return Files.isSameFile(Path.of(a), Path.of(b));
        } catch (IOException | java.nio.file.InvalidPathException e) {
            return false; // one of them is gone or no path: restore reports it when it loads it
        }
    }

    /** 0 for snapshots and everything else, 1 for snapshot-merge, 2 for snapshot-origin. */
    private static int restoreRank(Table table) {
        if (table == null) {
            return 0;
        }
        if (table.lines().stream().anyMatch(l -> l.targetType().equals("snapshot-origin"))) {
            return 2;
        }
        return table.lines().stream().anyMatch(l -> l.targetType().equals("snapshot-merge")) ? 1 : 0;
    }

    /**
     * Starts a daemon on {@code config.runDir()} and {@code config.stateDir()}.
     *
     * @throws IOException one line: a directory is refused (see {@link OwnedDirectory}) or another
     *                     daemon uses it, a listener cannot be opened, the state cannot be read
     */
    public static Daemon start(DaemonConfig config, String version) throws IOException {
        if (config.sameDirectories()) {
            throw new IOException(DaemonConfig.SAME_DIRECTORIES);
        }
        // Before anything is claimed or restored: a wrong group or certificate changes nothing.
        NbdServer.Access nbdAccess = nbdAccess(config.nbd());
        OwnedDirectory runDir = OwnedDirectory.claim(config.runDir(), OwnedDirectory.Kind.RUN, nbdAccess.group());
        StateStore state = null;
        boolean ok = false;
        try {
            state = config.stateDir() == null ? null : new StateStore(config.stateDir());
            Daemon daemon = new Daemon(config, runDir, state, nbdAccess, version);
            log.info(
                    "dmsnap {} daemon started (pid {}), run directory {}",
                    version,
                    ProcessHandle.current().pid(),
                    config.runDir());
            ok = true;
            return daemon;
        } finally {
            if (!ok) {
                if (state != null) {
                    state.close();
                }
                runDir.close();
            }
        }
    }

    private static NbdServer.Access nbdAccess(DaemonConfig.Nbd nbd) throws IOException {
        GroupPrincipal group = nbd.group() == null ? null : group(nbd.group());
        DaemonConfig.Tls tls = nbd.tls();
        return tls == null
                ? new NbdServer.Access(group, null, NbdTls.Mode.OFF)
                : new NbdServer.Access(group, NbdTls.load(tls.cert(), tls.key(), tls.ca()), tls.tcp());
    }

    /** {@code --nbd-group}'s group, from the group database. */
    private static GroupPrincipal group(String name) throws IOException {
        try {
            return FileSystems.getDefault().getUserPrincipalLookupService().lookupPrincipalByGroupName(name);
        } catch (UserPrincipalNotFoundException e) {
            throw new IOException("--nbd-group: there is no group named " + name);
        }
    }

    public DeviceManager devices() {
        return devices;
    }

    public DaemonConfig config() {
        return config;
    }

    public NbdServer nbd() {
        return nbd;
    }

    /** The metrics, or null without {@code --metrics}. */
    public DaemonMetrics metrics() {
        return metrics;
    }

    /** Blocks until {@link #stop()} has finished. */
    public void awaitStop() throws InterruptedException {
        done.await();
    }

    /** The orderly shutdown; idempotent. */
    public void stop() {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        log.info(
                "stopping: suspending and removing {} device(s)", devices.list().size());
        monitor.shutdownNow();
        try {
            control.close();
        } catch (IOException e) {
            log.warn("closing the control socket: {}", e.getMessage());
        }
        nbd.close(); // clients' requests in flight finish first; then the devices are no longer open
        if (metrics != null) {
            metrics.close();
        }
        List<MappedDevice> all = devices.list();
        for (MappedDevice d : all) {
            try {
                d.suspend();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        // Remove upper devices first: a stacked device holds the ones below it open.
        for (int pass = 0; pass < 8 && !devices.list().isEmpty(); pass++) {
            for (MappedDevice d : devices.list()) {
                try {
                    devices.remove(d.name(), false);
                } catch (DmException e) {
                    if (pass == 7) {
                        log.warn("removing {} at shutdown: {}", d.name(), e.getMessage());
                    }
                }
            }
        }
        // Every device was suspended (its deferred exceptions committed) and removed: nothing is
        // left for the commit interval.
        commitInterval.shutdownNow();
        try {
            copier.close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            if (state != null) {
                state.close();
            }
            runDir.close();
        } catch (IOException e) {
            log.warn("releasing the directory locks: {}", e.getMessage());
        }
        log.info("stopped");
        done.countDown();
    }

    @Override
    public void close() {
        stop();
    }
}
