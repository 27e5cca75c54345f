package dmsnap.snapshot;

import dmsnap.ffm.Errno;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.ExceptionStores;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.table.TableLoadException;
import dmsnap.target.Allocation;
import dmsnap.target.AllocationSink;
import dmsnap.target.DeviceResolver;
import dmsnap.target.IoRequest;
import dmsnap.target.SnapshotStatus;
import dmsnap.target.Target;
import dmsnap.target.TargetArgs;
import dmsnap.target.TargetContext;
import dmsnap.target.TargetType;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code snapshot <origin> <cow> <P|PO|N> <chunk> [<#features> <feature>...]} (spec 1.2), with
 * the kernel's argument order of checks and sentences. Loading reads (or formats) the COW,
 * unless a live instance already uses it: then this one is a handover destination (spec 8)
 * that reads nothing, shows chunk size 0, and takes the live store over at its resume.
 */
public final class SnapshotTarget implements OverOrigin {
    private static final Logger log = LoggerFactory.getLogger(SnapshotTarget.class);

    private final Snapshot snapshot;
    private final Registry registry;
    private final boolean discardZeroesCow;
    private final boolean discardPassdownOrigin;

    private SnapshotTarget(Snapshot snapshot, Registry registry, boolean zeroes, boolean passdown) {
        this.snapshot = snapshot;
        this.registry = registry;
        this.discardZeroesCow = zeroes;
        this.discardPassdownOrigin = passdown;
    }

    /** The {@code snapshot} target type over a registry and a copier; commit times go to {@code commits}. */
    public static TargetType type(Registry registry, ChunkCopier copier, CommitObserver commits) {
        return type(registry, copier, commits, CommitTimer.shared());
    }

    /** The same, deferred commits (cache modes none and writeback) made at the latest when {@code timer} says. */
    static TargetType type(Registry registry, ChunkCopier copier, CommitObserver commits, CommitTimer timer) {
        return TargetType.of(
                "snapshot", "1.16.0", (context, args) -> construct(context, args, registry, copier, commits, timer));
    }

    private static Target construct(
            TargetContext context,
            TargetArgs args,
            Registry registry,
            ChunkCopier copier,
            CommitObserver commits,
            CommitTimer timer)
            throws TableLoadException {
        Constructed c = construct(context, args, registry, copier, commits, timer, false);
        return new SnapshotTarget(c.snapshot(), registry, c.discardZeroesCow(), c.discardPassdownOrigin());
    }

    /** What the constructor of {@code snapshot} and of {@code snapshot-merge} builds. */
    record Constructed(Snapshot snapshot, boolean discardZeroesCow, boolean discardPassdownOrigin) {}

    /**
     * The constructor shared by {@code snapshot} and {@code snapshot-merge} (spec 1.2, 1.4: the
     * same grammar and checks, in the kernel's order): devices, store, registration with the
     * handover rules, then the metadata, unless this instance is a handover destination.
     */
    static Constructed construct(
            TargetContext context,
            TargetArgs args,
            Registry registry,
            ChunkCopier copier,
            CommitObserver commits,
            CommitTimer timer,
            boolean merge)
            throws TableLoadException {
        if (args.size() < 4) {
            throw args.fail("requires 4 or more arguments");
        }
        String originArg = args.next();
        String cowArg = args.next();
        String storeType = args.next();
        String chunkArg = args.next();
        boolean zeroes = false;
        boolean passdown = false;
        if (args.remaining() > 0) {
            long count;
            try {
                count = args.nextUnsigned("Invalid number of feature arguments");
            } catch (TableLoadException e) {
                throw args.fail("Invalid number of feature arguments");
            }
            if (count > 2 || count > args.remaining()) {
                throw args.fail("Invalid number of feature arguments");
            }
            for (long i = 0; i < count; i++) {
                String feature = args.next().toLowerCase(Locale.ROOT);
                switch (feature) {
                    case "discard_zeroes_cow" -> zeroes = true;
                    case "discard_passdown_origin" -> passdown = true;
                    default -> throw args.fail("Unrecognised feature requested");
                }
            }
            if (passdown && !zeroes) {
                throw args.fail("discard_passdown_origin feature depends on discard_zeroes_cow");
            }
        }
        DeviceResolver.Handle origin;
        try {
            // Spec 1.2 step 3: read-only for snapshot (its writes go to the COW), for writing for snapshot-merge.
            origin = context.open(originArg, merge ? DeviceResolver.Access.WRITE : DeviceResolver.Access.READ);
        } catch (IOException e) {
            throw args.failDevice("Cannot get origin device", e);
        }
        DeviceResolver.Handle cow = null;
        boolean ok = false;
        try {
            try {
                cow = context.open(cowArg, context.tableAccess());
            } catch (IOException e) {
                throw args.failDevice("Cannot get COW device", e);
            }
            if (cow.identity().equals(origin.identity())) {
                throw args.fail("COW device cannot be the same as origin device");
            }
            ExceptionStore store;
            try {
                store = ExceptionStores.create(storeType, chunkArg, cow.device(), origin.device());
            } catch (IllegalArgumentException e) {
                log.error("{}: {}: {}", context.deviceName(), merge ? "snapshot-merge" : "snapshot", e.getMessage());
                throw args.fail("Couldn't create exception store");
            }
            if (context.lengthSectors() > origin.device().sizeSectors()) {
                store.close();
                throw args.fail(
                        "Origin " + origin.canonicalName() + " too small for target: len=" + context.lengthSectors()
                                + ", dev_size=" + origin.device().sizeSectors());
            }
            Snapshot snapshot;
            try {
                snapshot = new Snapshot(
                        context.deviceName(),
                        origin,
                        cow,
                        store,
                        copier,
                        context.lengthSectors(),
                        context.event(),
                        context.deviceSuspended(),
                        commits,
                        merge,
                        context.cacheMode(),
                        timer);
            } catch (IOException e) {
                store.close();
                throw args.failDevice("Cannot get COW device", e); // its page-cache view (writeback)
            }
            Registry.Role role;
            try {
                role = registry.register(snapshot);
            } catch (HandoverException e) {
                store.close();
                snapshot.completeTable().close();
                throw args.fail(e.getMessage());
            }
            if (role == Registry.Role.DESTINATION) {
                // A destination reads nothing and has chunk size 0 until it takes over at resume.
                snapshot.replaceUnusedStore(ExceptionStores.create(storeType, "0", cow.device(), origin.device()));
                store.close();
                ok = true;
                return new Constructed(snapshot, zeroes, passdown);
            }
            try {
                ExceptionStore.LoadResult result =
                        store.load(snapshot.completeTable().loadingSink());
                if (result == ExceptionStore.LoadResult.INVALID) {
                    log.warn("{}: Snapshot is marked invalid.", context.deviceName());
                    snapshot.markLoadedInvalid();
                }
            } catch (IOException e) {
                // The kernel's order: the store's reason, then the constructor's error; the
                // error carries the reason too, so a one-line error (the CLI's) says why. The
                // errno is the store's: its own for metadata it refuses, EIO for one it cannot read.
                log.error("{}: {}", context.deviceName(), e.getMessage());
                registry.unregister(snapshot);
                snapshot.close();
                cow = null;
                origin = null;
                throw args.fail(
                        "Failed to read snapshot metadata: " + e.getMessage(),
                        e instanceof CorruptStoreException corrupt ? corrupt.errno() : Errno.EIO);
            }
            if (!store.chunkSize().isSet()) {
                registry.unregister(snapshot);
                snapshot.close();
                cow = null;
                origin = null;
                throw args.fail("Chunk size not set");
            }
            ok = true;
            return new Constructed(snapshot, zeroes, passdown);
        } catch (IOException e) {
            throw args.fail("Couldn't create exception store");
        } finally {
            if (!ok) {
                closeQuietly(cow);
                closeQuietly(origin);
            }
        }
    }

    private static void closeQuietly(DeviceResolver.Handle handle) {
        if (handle == null) {
            return;
        }
        try {
            handle.close();
        } catch (IOException e) {
            // The constructor's own error is what the user needs to see.
        }
    }

    Snapshot snapshot() {
        return snapshot;
    }

    @Override
    public String typeName() {
        return "snapshot";
    }

    @Override
    public void map(IoRequest io) throws IOException, InterruptedException {
        if (io.op() == IoRequest.Op.DISCARD) {
            snapshot.discard(io, discardPassdownOrigin);
            return;
        }
        snapshot.map(io);
    }

    @Override
    public boolean readIfCached(IoRequest io) throws IOException {
        return snapshot.readIfCached(io);
    }

    @Override
    public boolean readsThroughPageCache() {
        return snapshot.readsThroughPageCache();
    }

    /** Discards reach this target only with {@code discard_zeroes_cow} (spec 1.2). */
    @Override
    public boolean supportsDiscard() {
        return discardZeroesCow;
    }

    @Override
    public Allocation allocation(long sector, long maxSectors) throws IOException {
        return snapshot.allocation(sector, maxSectors);
    }

    @Override
    public void allocationRuns(long sector, long maxSectors, AllocationSink sink) throws IOException {
        snapshot.allocationRuns(sector, maxSectors, sink);
    }

    @Override
    public ChangeMap changes() {
        return new ChangeMap(registry, snapshot.originIdentity(), snapshot);
    }

    @Override
    public int logicalBlockBytes() {
        return Math.max(
                snapshot.originHandle().device().logicalBlockBytes(),
                snapshot.cowHandle().device().logicalBlockBytes());
    }

    /**
     * Reads and writes are taken whole and mapped chunk by chunk by {@link Snapshot} (so that
     * neighbouring chunks move in one device I/O); discards are split per chunk, as the kernel's
     * max_io_len splits them.
     */
    @Override
    public long splitSectors(IoRequest.Op op) {
        return op == IoRequest.Op.READ || op == IoRequest.Op.WRITE ? 0 : maxIoSectors();
    }

    @Override
    public long maxIoSectors() {
        return snapshot.chunkSectors();
    }

    @Override
    public SnapshotStatus status() throws IOException {
        return snapshot.status();
    }

    @Override
    public List<String> tableArgs() {
        return tableArgs(snapshot, discardZeroesCow, discardPassdownOrigin);
    }

    /** Table status of {@code snapshot} and {@code snapshot-merge} (spec 6.2): features in the kernel's order. */
    static List<String> tableArgs(Snapshot snapshot, boolean discardZeroesCow, boolean discardPassdownOrigin) {
        List<String> args = new ArrayList<>(snapshot.tableArgs());
        if (discardZeroesCow && discardPassdownOrigin) {
            args.addAll(List.of("2", "discard_zeroes_cow", "discard_passdown_origin"));
        } else if (discardZeroesCow) {
            args.addAll(List.of("1", "discard_zeroes_cow"));
        }
        return args;
    }

    /**
     * Suspend has drained the device's I/O: its deferred exceptions are committed now, so that a
     * handover (table reload, {@code snapshot refresh}), a merge or a stop finds them in the store.
     */
    @Override
    public void postsuspend() {
        snapshot.commitDeferred();
    }

    @Override
    public void preresume() throws TableLoadException {
        checkHandoverBeforeResume(snapshot, registry, "snapshot");
    }

    /**
     * Spec 8.3 (snapshot and snapshot-merge): with a handover pending, the source may not come
     * back, and the destination waits for the source's device to be suspended.
     */
    static void checkHandoverBeforeResume(Snapshot snapshot, Registry registry, String target)
            throws TableLoadException {
        Registry.Sharing sharing = registry.scan(snapshot);
        if (sharing.source() == null || sharing.destination() == null) {
            return;
        }
        if (sharing.source() == snapshot) {
            throw new TableLoadException(target, "Unable to resume snapshot source until handover completes.");
        }
        if (!sharing.source().deviceSuspended()) {
            throw new TableLoadException(target, "Unable to perform snapshot handover until source is suspended.");
        }
    }

    @Override
    public void resume() {
        resume(snapshot, registry);
    }

    /**
     * Spec 8.4 (snapshot, and the first half of snapshot-merge): stop the origin's merge if one
     * is running (it waits for the step in progress), quiesce origin writes, hand the store over
     * if this is a pending destination, become active (from now on origin writes copy into this
     * snapshot), then restart the merge. The kernel restarts the merge before it marks the
     * resumed snapshot active, so a merge step could overwrite an origin chunk the new snapshot
     * never got; here the restart comes after.
     */
    static void resume(Snapshot snapshot, Registry registry) {
        Snapshot merging = registry.mergingSnapshotOf(snapshot.originIdentity());
        boolean restart = merging != null
                && merging != snapshot
                && merging.merger() != null
                && merging.merger().stopIfRunning();
        try {
            var io = registry.originIoLock(snapshot.originIdentity()).writeLock();
            io.lock();
            try {
                Registry.Sharing sharing = registry.scan(snapshot);
                if (sharing.source() != null && sharing.destination() == snapshot) {
                    snapshot.takeOver(sharing.source());
                }
                snapshot.markActive();
            } finally {
                io.unlock();
            }
            registry.resort(snapshot.originIdentity());
        } finally {
            if (restart) {
                merging.merger().start();
            }
        }
    }

    @Override
    public void close() throws IOException {
        destroy(snapshot, registry);
    }

    /**
     * Spec 8.6: a source destroyed before its destination resumed cancels the handover; a
     * merge stops (after the step in progress); then the instance leaves the origin's list.
     */
    static void destroy(Snapshot snapshot, Registry registry) throws IOException {
        Registry.Sharing sharing = registry.scan(snapshot);
        if (sharing.source() == snapshot && sharing.destination() != null) {
            sharing.destination().cancelHandover();
        }
        if (snapshot.merger() != null) {
            snapshot.merger().stop();
        }
        registry.unregister(snapshot);
        snapshot.close();
    }
}
