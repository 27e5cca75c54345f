package dmsnap.device;

import dmsnap.ffm.Errno;
import dmsnap.table.Table;
import dmsnap.table.TableLine;
import dmsnap.table.TableLoadException;
import dmsnap.target.Allocation;
import dmsnap.target.AllocationSink;
import dmsnap.target.CacheMode;
import dmsnap.target.ChangeSink;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusText;
import dmsnap.target.StatusType;
import dmsnap.target.Target;
import dmsnap.target.TargetArgs;
import dmsnap.target.TargetContext;
import dmsnap.target.TargetTypes;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A mapped device ({@code struct mapped_device}): a name, a live table that I/O goes through, an
 * inactive table waiting for resume, and suspend state. Lifecycle as the kernel's (spec 10.5):
 * load builds every target of a table into the inactive slot (constructors run then); resume
 * swaps it in (suspending first if needed), runs preresume hooks (the first refusal leaves the
 * device suspended, with the new table live) and resume hooks; suspend runs presuspend hooks,
 * drains I/O through the {@link IoGate} and runs postsuspend hooks.
 *
 * <p>Locks: {@link #control} serialises control operations on this device and guards the
 * fields below it; {@link #live} is also read without it by I/O, which is safe because a table
 * is swapped only while the gate is closed.
 */
public final class MappedDevice {
    private static final Logger log = LoggerFactory.getLogger(MappedDevice.class);

    /**
     * A constructed table: its lines and targets, in order; {@code readOnly}: dmsetup's
     * --readonly; {@code cacheMode}: when its snapshot writes are acknowledged.
     */
    public record LiveTable(Table table, List<Target> targets, boolean readOnly, CacheMode cacheMode) {
        long lengthSectors() {
            return table.lengthSectors();
        }
    }

    private final ReentrantLock control = new ReentrantLock();
    private final IoGate gate = new IoGate();
    private final IoStats stats = new IoStats();
    private final int major;
    private final int minor;
    private final String uuid;
    private final AtomicLong eventNumber = new AtomicLong();
    private volatile String name;
    private volatile LiveTable live;
    private LiveTable inactive;
    private int openCount;
    private boolean removed;

    MappedDevice(String name, String uuid, int major, int minor) {
        this.name = name;
        this.uuid = uuid;
        this.major = major;
        this.minor = minor;
    }

    public String name() {
        return name;
    }

    /** Renames the device once {@code recorder} has recorded the new name and the dependents' tables. */
    void rename(String newName, DeviceRecorder recorder, List<DeviceRecorder.Dependent> dependents) throws DmException {
        control.lock();
        try {
            requireNotRemoved();
            recorder.beforeRename(this, newName, dependents);
            this.name = newName;
        } finally {
            control.unlock();
        }
    }

    /**
     * A device this one's tables name as {@code from} is now called {@code to}: the text of the
     * live and inactive tables follows (their targets hold the device itself, not its name).
     */
    void replaceDeviceArgument(String from, String to) {
        control.lock();
        try {
            LiveTable l = live;
            if (l != null && l.table().hasArgument(from)) {
                live = new LiveTable(l.table().replacingArgument(from, to), l.targets(), l.readOnly(), l.cacheMode());
            }
            LiveTable i = inactive;
            if (i != null && i.table().hasArgument(from)) {
                inactive =
                        new LiveTable(i.table().replacingArgument(from, to), i.targets(), i.readOnly(), i.cacheMode());
            }
        } finally {
            control.unlock();
        }
    }

    /** Whether the live or the inactive table has the argument {@code argument}. */
    boolean tablesHaveArgument(String argument) {
        control.lock();
        try {
            LiveTable l = live;
            return l != null && l.table().hasArgument(argument)
                    || inactive != null && inactive.table().hasArgument(argument);
        } finally {
            control.unlock();
        }
    }

    public String uuid() {
        return uuid;
    }

    public int minor() {
        return minor;
    }

    /** Size of the live table in sectors (0 without one). */
    public long sizeSectors() {
        LiveTable t = live;
        return t == null ? 0 : t.lengthSectors();
    }

    // ---- I/O -----------------------------------------------------------------------------------

    /**
     * Performs {@code io} through the live table: split at target boundaries and where each
     * target splits (the snapshot targets take whole requests and split them themselves, keeping
     * the kernel's per-chunk order), flushes sent to every target. Waits while the device is
     * suspended. A FUA request split in pieces ends with one flush of each target it touched
     * instead of one per piece. Counted in {@link #ioStats()} when it completes, failed or not.
     *
     * @throws IOException EIO from a target, or the device has no table
     */
    public void submit(IoRequest io) throws IOException, InterruptedException {
        gate.enter();
        perform(io, false);
    }

    /**
     * Performs READ {@code io} as {@link #submit} does, but only if it completes without waiting
     * (the kernel's {@code REQ_NOWAIT} bio): the device is not suspended, and every target it
     * touches serves its part at once ({@link Target#readIfCached}). Counted in {@link #ioStats()}
     * when it is served (as a cached read too) or fails, not when it would wait.
     *
     * @return false when it would wait: submit it; the buffer may hold part of the data meanwhile
     * @throws IOException the read failed, as {@link #submit} would have failed it
     */
    public boolean readIfCached(IoRequest io) throws IOException {
        if (io.op() != IoRequest.Op.READ) {
            throw new IllegalArgumentException("only a READ can be served without waiting, not " + io.op());
        }
        if (!gate.tryEnter()) {
            return false;
        }
        try {
            return perform(io, true);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // a read that does not wait is never interrupted in a wait
            return false;
        }
    }

    /**
     * {@link #submit}'s work once the gate is entered (exits it); {@code nowait}: a READ that
     * returns false, uncounted, where a target would wait.
     */
    private boolean perform(IoRequest io, boolean nowait) throws IOException, InterruptedException {
        boolean failed = true;
        boolean wouldWait = false;
        try {
            LiveTable t = live;
            if (t == null) {
                throw new IOException(name + " has no table");
            }
            if (io.op() == IoRequest.Op.FLUSH) {
                for (Target target : t.targets()) {
                    target.map(io);
                }
                failed = false;
                return true;
            }
            if (t.readOnly() && io.isWrite()) {
                throw new IOException(name + ": " + io.op() + " refused: the device is read-only");
            }
            if (io.endSector() > t.lengthSectors()) {
                throw new IOException(name + ": I/O at sector " + io.sector() + "+" + io.lengthSectors()
                        + " is beyond the end of the device (" + t.lengthSectors() + " sectors)");
            }
            List<Piece> pieces = split(t, io);
            for (Piece p : pieces) {
                if (!p.run(nowait)) {
                    wouldWait = true;
                    return false;
                }
            }
            if (pieces.size() > 1 && io.fua()) {
                for (Target target :
                        pieces.stream().map(Piece::target).distinct().toList()) {
                    target.map(IoRequest.flush());
                }
            }
            failed = false;
            return true;
        } finally {
            if (!wouldWait) {
                stats.account(io, failed, nowait);
            }
            gate.exit();
        }
    }

    /**
     * Block status: what backs the device from {@code sector} on, for at most {@code maxSectors}
     * (positive, inside the device), as the target there reports it; the first run only, never
     * past the end of that table line. Waits while the device is suspended, as I/O does, so that
     * it never sees a table or exception store in the middle of a swap.
     *
     * @throws IOException the target cannot tell (see {@link Target#allocation}), or no table
     */
    public Allocation allocation(long sector, long maxSectors) throws IOException, InterruptedException {
        gate.enter();
        try {
            LiveTable t = liveFor(sector, maxSectors);
            List<TableLine> lines = t.table().lines();
            int index = lineIndex(lines, sector);
            TableLine line = lines.get(index);
            long length = Math.min(maxSectors, line.endSector() - sector);
            Allocation a = t.targets().get(index).allocation(sector - line.startSector(), length);
            return a.sectors() > length ? a.withSectors(length) : a;
        } finally {
            gate.exit();
        }
    }

    /**
     * Block status as {@link #allocation} gives it, run after run from {@code sector} on, across
     * table lines, for at most {@code maxSectors} or until {@code sink} says stop: one pass
     * through the gate, and each target walks its part at once ({@link Target#allocationRuns}).
     *
     * @throws IOException a target cannot tell (see {@link Target#allocation}), or no table
     */
    public void allocationRuns(long sector, long maxSectors, AllocationSink sink)
            throws IOException, InterruptedException {
        boolean[] going = {true};
        AllocationSink relay = (sectors, depth) -> going[0] = sink.accept(sectors, depth);
        acrossLines(sector, maxSectors, (target, from, sectors) -> {
            target.allocationRuns(from, sectors, relay);
            return going[0];
        });
    }

    /** One target's part of a walk across table lines ({@link #acrossLines}): false to stop. */
    @FunctionalInterface
    private interface LineWalk {
        boolean walk(Target target, long sector, long maxSectors) throws IOException, InterruptedException;
    }

    /**
     * Walks {@code [sector, sector + maxSectors)} line by line through one pass of the gate (which
     * waits while the device is suspended), each line's part in its target's own sectors.
     */
    private void acrossLines(long sector, long maxSectors, LineWalk walk) throws IOException, InterruptedException {
        gate.enter();
        try {
            LiveTable t = liveFor(sector, maxSectors);
            List<TableLine> lines = t.table().lines();
            long end = sector + maxSectors;
            for (int i = lineIndex(lines, sector);
                    i < lines.size() && lines.get(i).startSector() < end;
                    i++) {
                TableLine line = lines.get(i);
                long from = Math.max(sector, line.startSector());
                if (!walk.walk(t.targets().get(i), from - line.startSector(), Math.min(end, line.endSector()) - from)) {
                    return;
                }
            }
        } finally {
            gate.exit();
        }
    }

    /** The live table, for block status of {@code [sector, sector + maxSectors)}: there must be one, holding the range. */
    private LiveTable liveFor(long sector, long maxSectors) throws IOException {
        LiveTable t = live;
        if (t == null) {
            throw new IOException(name + " has no table");
        }
        if (sector < 0 || maxSectors <= 0 || sector + maxSectors > t.lengthSectors()) {
            throw new IOException(name + ": block status at sector " + sector + "+" + maxSectors
                    + " is beyond the end of the device (" + t.lengthSectors() + " sectors)");
        }
        return t;
    }

    /**
     * The snapshots whose changes this device can report ({@link #changedRuns}): those every
     * line of its live table can compare with, by device name; empty without a table.
     */
    public Set<String> baselines() {
        LiveTable t = live;
        if (t == null) {
            return Set.of();
        }
        Set<String> common = null;
        for (Target target : t.targets()) {
            Set<String> names = target.baselines();
            if (common == null) {
                common = new TreeSet<>(names);
            } else {
                common.retainAll(names);
            }
        }
        return common == null ? Set.of() : common;
    }

    /**
     * Whether the device's sectors from {@code sector} on changed since snapshot {@code baseline}
     * was taken: their runs in order, across table lines, for at most {@code maxSectors} or until
     * {@code sink} says stop; one pass through the gate, which waits while the device is suspended.
     *
     * @throws IOException {@code baseline} is not one of {@link #baselines()}, or no table
     */
    public void changedRuns(String baseline, long sector, long maxSectors, ChangeSink sink)
            throws IOException, InterruptedException {
        boolean[] going = {true};
        ChangeSink relay = (sectors, changed) -> going[0] = sink.accept(sectors, changed);
        acrossLines(sector, maxSectors, (target, from, sectors) -> {
            target.changedRuns(baseline, from, sectors, relay);
            return going[0];
        });
    }

    /** One target's part of a request, in target-relative sectors. */
    private record Piece(Target target, IoRequest io) {
        /** Maps it; {@code nowait}: only if that does not wait (else false, see {@link Target#readIfCached}). */
        boolean run(boolean nowait) throws IOException, InterruptedException {
            if (nowait) {
                return target.readIfCached(io);
            }
            target.map(io);
            return true;
        }
    }

    /** The pieces of {@code io}; refuses a discard that a target cannot take before any piece runs. */
    private List<Piece> split(LiveTable t, IoRequest io) throws IOException {
        List<TableLine> lines = t.table().lines();
        int index = lineIndex(lines, io.sector());
        long at = io.sector();
        List<Piece> pieces = new ArrayList<>(1);
        while (at < io.endSector()) {
            TableLine line = lines.get(index);
            Target target = t.targets().get(index);
            if ((io.op() == IoRequest.Op.DISCARD || io.op() == IoRequest.Op.WRITE_ZEROES)
                    && !target.supportsDiscard()) {
                throw new IOException(name + ": " + target.typeName() + " does not support " + io.op());
            }
            long end = Math.min(io.endSector(), line.endSector());
            long relative = at - line.startSector();
            long boundary = target.splitSectors(io.op());
            if (boundary > 0) {
                end = Math.min(end, line.startSector() + (relative / boundary + 1) * boundary);
            }
            pieces.add(new Piece(target, io.slice(at, end - at, relative)));
            at = end;
            if (at == line.endSector()) {
                index++;
            }
        }
        if (pieces.size() > 1 && io.fua()) {
            pieces.replaceAll(p -> new Piece(p.target(), p.io().withoutFua()));
        }
        return pieces;
    }

    /** Waits while the device is suspended; I/O submitted afterwards normally does not park. */
    public void awaitResumed() throws InterruptedException {
        gate.awaitResumed();
    }

    /** Whether a target of the live table reads through the page cache ({@link Target#readsThroughPageCache}). */
    public boolean readsThroughPageCache() {
        LiveTable t = live;
        if (t != null) {
            for (Target target : t.targets()) {
                if (target.readsThroughPageCache()) {
                    return true;
                }
            }
        }
        return false;
    }

    /** The largest logical block size of the live table's devices (512 without a table). */
    public int logicalBlockBytes() {
        LiveTable t = live;
        int block = 512;
        if (t != null) {
            for (Target target : t.targets()) {
                block = Math.max(block, target.logicalBlockBytes());
            }
        }
        return block;
    }

    /** Whether the live table is read-only. */
    public boolean isReadOnly() {
        LiveTable t = live;
        return t != null && t.readOnly();
    }

    /** Whether every target of the live table takes discards. */
    public boolean supportsDiscard() {
        LiveTable t = live;
        return t != null && t.targets().stream().allMatch(Target::supportsDiscard);
    }

    private static int lineIndex(List<TableLine> lines, long sector) {
        int lo = 0;
        int hi = lines.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (lines.get(mid).startSector() <= sector) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    // ---- control ---------------------------------------------------------------------------------

    /** Builds {@code table} into the inactive slot; on failure nothing changes. */
    public void load(Table table, TargetTypes types, BackingDevices devices) throws TableLoadException {
        load(table, types, devices, false);
    }

    /**
     * The same, read-only ({@code dmsetup load --readonly}) when {@code readOnly}: once live,
     * the device refuses writes, discards and write-zeroes, and NBD exports it read-only. The
     * table keeps the device's cache mode (see {@link #load(Table, TargetTypes, BackingDevices,
     * boolean, CacheMode)}).
     */
    public void load(Table table, TargetTypes types, BackingDevices devices, boolean readOnly)
            throws TableLoadException {
        load(table, types, devices, readOnly, null);
    }

    /**
     * The same, the table's snapshot writes acknowledged as {@code cacheMode} says; null: the
     * device's current mode ({@link #cacheMode()}), or {@link CacheMode#DIRECTSYNC} (the
     * kernel's rule) for a device that has no table yet.
     */
    public void load(Table table, TargetTypes types, BackingDevices devices, boolean readOnly, CacheMode cacheMode)
            throws TableLoadException {
        control.lock();
        try {
            requireNotRemoved();
            CacheMode mode = cacheMode != null ? cacheMode : cacheModeOr(CacheMode.DIRECTSYNC);
            List<Target> built = new ArrayList<>();
            boolean ok = false;
            try {
                for (TableLine line : table.lines()) {
                    built.add(types.get(line.targetType())
                            .create(
                                    new TargetContext(
                                            devices,
                                            name,
                                            line.lengthSectors(),
                                            this::event,
                                            this::isSuspended,
                                            readOnly,
                                            mode),
                                    new TargetArgs(line.targetType(), line.args())));
                }
                ok = true;
            } finally {
                if (!ok) {
                    destroy(new LiveTable(table, built, readOnly, mode));
                }
            }
            LiveTable previous = inactive;
            inactive = new LiveTable(table, List.copyOf(built), readOnly, mode);
            destroy(previous);
            log.info(
                    "{}: table loaded ({} target{}, cache {})",
                    name,
                    built.size(),
                    built.size() == 1 ? "" : "s",
                    mode.text());
        } finally {
            control.unlock();
        }
    }

    /**
     * The cache mode of the live table, else of the inactive one; null without a table (the mode
     * a load without one keeps).
     */
    public CacheMode cacheMode() {
        control.lock();
        try {
            return cacheModeOr(null);
        } finally {
            control.unlock();
        }
    }

    private CacheMode cacheModeOr(CacheMode none) {
        LiveTable l = live;
        return l != null ? l.cacheMode() : inactive != null ? inactive.cacheMode() : none;
    }

    /** Destroys the inactive table. */
    public void clear() {
        control.lock();
        try {
            LiveTable previous = inactive;
            inactive = null;
            destroy(previous);
        } finally {
            control.unlock();
        }
    }

    /**
     * {@code dmsetup suspend --noflush}: the same as {@link #suspend()} here, because no dmsnap
     * target pushes I/O back for requeueing (spec 5.5); it differs only in the file-system
     * freeze that userspace may skip.
     */
    public void suspend(boolean noflush) throws InterruptedException {
        suspend();
    }

    /** Suspends: presuspend hooks, drain I/O, postsuspend hooks. No-op when suspended already. */
    public void suspend() throws InterruptedException {
        control.lock();
        try {
            requireNotRemoved();
            suspendLocked();
        } finally {
            control.unlock();
        }
    }

    private void suspendLocked() throws InterruptedException {
        if (gate.isSuspended()) {
            return;
        }
        LiveTable t = live;
        if (t != null) {
            t.targets().forEach(Target::presuspend);
        }
        gate.suspend();
        if (t != null) {
            t.targets().forEach(Target::postsuspend);
        }
        log.info("{}: suspended", name);
    }

    /**
     * Resumes: swaps in the inactive table if there is one (suspending first), runs preresume
     * hooks (a refusal leaves the device suspended and is thrown) and resume hooks, lets I/O go.
     */
    public void resume() throws DmException, InterruptedException {
        resume(DeviceRecorder.NONE);
    }

    /**
     * The same, with the inactive table recorded by {@code recorder} before it is swapped in: a
     * table that cannot be recorded does not go live, and the device stays as it was (not
     * suspended by this call, its inactive table kept).
     */
    public void resume(DeviceRecorder recorder) throws DmException, InterruptedException {
        control.lock();
        try {
            requireNotRemoved();
            LiveTable old = null;
            if (inactive != null) {
                recorder.beforeLive(this, inactive.table(), inactive.readOnly(), inactive.cacheMode());
                suspendLocked();
                old = live;
                live = inactive;
                inactive = null;
            } else if (!gate.isSuspended()) {
                return;
            }
            try {
                if (live == null) {
                    throw new DmException(Errno.EINVAL, name + " has no table to resume");
                }
                for (Target target : live.targets()) {
                    try {
                        target.preresume();
                    } catch (TableLoadException e) {
                        throw new DmException(e.errno(), e.getMessage(), e);
                    }
                }
                live.targets().forEach(Target::resume);
                gate.resume();
                log.info("{}: resumed", name);
            } finally {
                destroy(old);
            }
        } finally {
            control.unlock();
        }
    }

    /**
     * Destroys both tables once {@code recorder} has recorded the removal; the device must not be
     * open unless {@code force}.
     */
    void remove(boolean force, DeviceRecorder recorder) throws DmException {
        control.lock();
        try {
            requireNotRemoved();
            if (openCount > 0 && !force) {
                throw new DmException(Errno.EBUSY, name + " is open (" + openCount + " users)");
            }
            recorder.beforeRemove(this);
            removed = true;
            LiveTable l = live;
            LiveTable i = inactive;
            live = null;
            inactive = null;
            gate.resume(); // parked I/O sees no table and fails
            destroy(i);
            destroy(l);
        } finally {
            control.unlock();
        }
    }

    /** An NBD client or a stacked target has the device open. */
    public void open() {
        control.lock();
        try {
            requireNotRemoved();
            openCount++;
        } finally {
            control.unlock();
        }
    }

    public void close() {
        control.lock();
        try {
            openCount--;
        } finally {
            control.unlock();
        }
    }

    /** What I/O this device has seen, for metrics. */
    public IoStats ioStats() {
        return stats;
    }

    /** Counts an event (invalidation), as {@code dm_table_event}. */
    public void event() {
        eventNumber.incrementAndGet();
    }

    public boolean isSuspended() {
        return gate.isSuspended();
    }

    /** Callers parked until the device resumes (I/O that came while it was suspended). */
    public int parkedIo() {
        return gate.parked();
    }

    public DeviceInfo info() {
        control.lock();
        try {
            LiveTable t = live;
            return new DeviceInfo(
                    name,
                    uuid,
                    gate.isSuspended(),
                    t != null && t.readOnly(),
                    t != null,
                    inactive != null,
                    openCount,
                    eventNumber.get(),
                    major,
                    minor,
                    t == null ? 0 : t.targets().size(),
                    t == null ? null : t.cacheMode());
        } finally {
            control.unlock();
        }
    }

    /**
     * {@code dmsetup status} or {@code dmsetup table} lines of the live (or inactive) table:
     * {@code <start> <length> <type> <status>}, with the space before an empty status kept,
     * rendered by {@link StatusText} from {@link #status} or {@link #printedTable}.
     */
    public List<String> statusLines(StatusType type, boolean inactiveTable) throws IOException {
        if (type == StatusType.INFO) {
            return status(inactiveTable).stream()
                    .map(l -> StatusText.infoLine(l.startSector(), l.lengthSectors(), l.targetType(), l.status()))
                    .toList();
        }
        return printedTable(inactiveTable).lines().stream()
                .map(StatusText::tableLine)
                .toList();
    }

    /**
     * The status of each line of the live (or inactive) table, in table order (empty without a
     * table). Taken under the control lock, as {@code dmsetup status}: the table is not destroyed
     * meanwhile.
     *
     * @throws IOException a target's state could not be read (a snapshot's COW size)
     */
    public List<StatusLine> status(boolean inactiveTable) throws IOException {
        control.lock();
        try {
            LiveTable t = inactiveTable ? inactive : live;
            List<StatusLine> lines = new ArrayList<>();
            if (t == null) {
                return lines;
            }
            for (int i = 0; i < t.targets().size(); i++) {
                TableLine line = t.table().lines().get(i);
                lines.add(new StatusLine(
                        line.startSector(),
                        line.lengthSectors(),
                        line.targetType(),
                        t.targets().get(i).status()));
            }
            return lines;
        } finally {
            control.unlock();
        }
    }

    /**
     * The live (or inactive) table as {@code dmsetup table} prints it: each line's arguments as
     * its target prints them ({@link Target#tableArgs}: canonical device names, effective chunk
     * size), not as they were loaded. Empty without a table.
     */
    public Table printedTable(boolean inactiveTable) {
        control.lock();
        try {
            LiveTable t = inactiveTable ? inactive : live;
            List<TableLine> lines = new ArrayList<>();
            if (t == null) {
                return new Table(lines);
            }
            for (int i = 0; i < t.targets().size(); i++) {
                TableLine line = t.table().lines().get(i);
                lines.add(new TableLine(
                        line.startSector(),
                        line.lengthSectors(),
                        line.targetType(),
                        t.targets().get(i).tableArgs()));
            }
            return new Table(lines);
        } finally {
            control.unlock();
        }
    }

    /** The live table's targets in table order (empty without one), for the daemon's merge flow. */
    public List<Target> liveTargets() {
        LiveTable t = live;
        return t == null ? List.of() : t.targets();
    }

    /** The live table, for tests and the state file. */
    public Table liveTable() {
        LiveTable t = live;
        return t == null ? null : t.table();
    }

    private void requireNotRemoved() {
        if (removed) {
            throw new IllegalStateException(name + " has been removed");
        }
    }

    private void destroy(LiveTable table) {
        if (table == null) {
            return;
        }
        for (Target target : table.targets()) {
            try {
                target.close();
            } catch (IOException | RuntimeException e) {
                log.warn("{}: closing {} target failed: {}", name, target.typeName(), e.getMessage());
            }
        }
    }
}
