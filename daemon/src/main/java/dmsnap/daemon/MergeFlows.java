package dmsnap.daemon;

import dmsnap.control.ControlResponse;
import dmsnap.control.MergeService;
import dmsnap.control.ResponseData.MergeStarted;
import dmsnap.control.ResponseData.MergeStatus;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.snapshot.SnapshotMergeTarget;
import dmsnap.table.Table;
import dmsnap.table.TableLine;
import dmsnap.table.TableLoadException;
import dmsnap.target.StatusType;
import dmsnap.target.Target;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * lvconvert --merge and lvmpolld in one (spec 8.7): merges a snapshot into its origin and sees
 * it through. Starting: load {@code snapshot-merge} (the snapshot's origin, COW, store and chunk
 * size) into the origin device, suspend the origin and the snapshot, resume the origin (the
 * snapshot's exception store is handed over and the merge starts), resume the old snapshot
 * device (it is invalid now) and remove it. When the merge is complete the origin's table
 * becomes {@code snapshot-origin} again if other snapshots of it remain, else {@code linear}, as
 * lvm2 does; the COW file is left alone.
 *
 * <p>While the origin device is open (an NBD client, a device stacked on it), the merge would
 * change its content under its user's feet: as LVM ("Can't merge over open origin volume"), the
 * merge is deferred to the origin's next activation. dmsnap has no deactivate/activate cycle of
 * its own, so here that is the moment nothing holds the origin open any more (or the next daemon
 * start, which activates everything): then the same sequence runs.
 *
 * <p>Each merge the flow looks after is recorded in the state directory ({@code ORIGIN.merge}),
 * and the origin's snapshot-merge table is recorded (then the snapshot's record dropped) before
 * the origin resumes: a daemon killed at any point comes back with either the snapshot or the
 * merge, never both (a snapshot record left beside the merge of its COW is dropped at restore:
 * the merge was decided), and a restored merge continues from the COW and is finished by this flow.
 * Merges loaded by hand (dmsetup style) are reported, never finished: that is userspace's job.
 * {@link MergeRecords} reads and writes the flows' records, {@link MergeReport} says what
 * {@code snapshot merge --status} shows of each merge.
 *
 * <p>Locks: this object's monitor guards {@link #flows} and {@link #finished}; it is taken before
 * the device manager's and devices' locks.
 */
public final class MergeFlows implements MergeService {
    private static final Logger log = LoggerFactory.getLogger(MergeFlows.class);

    private final DeviceManager devices;
    private final StateStore state;
    private final MergeRecords records;
    private final Map<String, Flow> flows = new TreeMap<>();
    /** The merges this daemon finished, by origin: shown until a new merge of the origin starts. */
    private final Map<String, MergeReport> finished = new TreeMap<>();

    /** A merge this flow looks after, by origin device. */
    private static final class Flow {
        final String origin;
        final String snapshot;
        final String cow;
        boolean started;
        long totalBytes;
        String reported;

        Flow(String origin, String snapshot, String cow) {
            this.origin = origin;
            this.snapshot = snapshot;
            this.cow = cow;
        }

        Flow(MergeRecords.Entry e) {
            this(e.origin(), e.snapshot(), e.cow());
            this.started = e.started();
            this.totalBytes = e.totalBytes();
        }

        MergeRecords.Entry entry() {
            return new MergeRecords.Entry(origin, snapshot, cow, started, totalBytes);
        }
    }

    /** A step of the sequence failed; the response says which and why. */
    private static final class StepFailed extends Exception {
        private static final long serialVersionUID = 1L;
        final transient ControlResponse.Failure failure;

        StepFailed(String operation, Errno errno, String reason) {
            super(reason, null, false, false);
            this.failure = new ControlResponse.Failure(operation, errno, reason);
        }
    }

    /**
     * @param state where flows are recorded, or null (then a daemon restart forgets them)
     */
    public MergeFlows(DeviceManager devices, StateStore state) {
        this.devices = devices;
        this.state = state;
        this.records = new MergeRecords(state);
    }

    /** Takes up the flows recorded in the state directory (after the devices were restored). */
    public synchronized void restore() throws IOException {
        for (MergeRecords.Entry e : records.loadAll()) {
            Flow f = new Flow(e);
            flows.put(f.origin, f);
            log.info("{}: taking up the merge of {} ({})", f.origin, f.snapshot, f.started ? "started" : "waiting");
        }
    }

    // ---- starting --------------------------------------------------------------------------------

    @Override
    public synchronized ControlResponse merge(String snapshot) {
        try {
            MappedDevice snap = devices.get(snapshot);
            TableLine t = printedLine(snap);
            if (t == null || !t.targetType().equals("snapshot")) {
                return new ControlResponse.Failure("merge", Errno.EINVAL, snapshot + " is not a snapshot");
            }
            for (Flow f : flows.values()) {
                if (f.snapshot.equals(snapshot) && !f.started) {
                    return success(
                            List.of("Merging of snapshot " + snapshot + " will occur on next activation of " + f.origin
                                    + " (already requested)."),
                            f,
                            "waiting");
                }
            }
            String originArg = t.args().getFirst();
            List<MappedDevice> origins = devicesWith("snapshot-origin", originArg);
            if (origins.isEmpty()) {
                List<MappedDevice> merging = devicesWith("snapshot-merge", originArg);
                if (!merging.isEmpty()) {
                    Flow other = flows.get(merging.getFirst().name());
                    return new ControlResponse.Failure(
                            "merge",
                            Errno.EBUSY,
                            "Cannot merge snapshot " + snapshot
                                    + " into the origin " + merging.getFirst().name() + " with merging snapshot "
                                    + (other == null ? "(loaded by hand)" : other.snapshot) + ".");
                }
                return new ControlResponse.Failure(
                        "merge",
                        Errno.ENXIO,
                        "no origin device of " + snapshot + " is active (a snapshot-origin over " + originArg + ")");
            }
            if (origins.size() > 1) {
                return new ControlResponse.Failure(
                        "merge",
                        Errno.EINVAL,
                        "several origin devices over " + originArg + ": "
                                + String.join(
                                        ", ",
                                        origins.stream().map(MappedDevice::name).toList()));
            }
            MappedDevice origin = origins.getFirst();
            Flow f = new Flow(origin.name(), snapshot, t.args().get(1));
            int users = origin.info().openCount();
            try {
                persist(f);
            } catch (IOException e) {
                return new ControlResponse.Failure("merge", StateStore.errnoOf(e), notRecorded(f, e));
            }
            flows.put(f.origin, f);
            if (users > 0) {
                log.info("{}: open ({} users): the merge of {} waits until it is not", f.origin, users, snapshot);
                return success(
                        List.of(
                                "Can't merge over open origin volume.",
                                "Merging of snapshot " + snapshot + " will occur on next activation of " + f.origin
                                        + " (when nothing holds it open: " + users + " user" + (users == 1 ? "" : "s")
                                        + " now)."),
                        f,
                        "waiting");
            }
            try {
                return success(start(f), f, "merging");
            } catch (StepFailed e) {
                forget(f);
                return e.failure;
            }
        } catch (DmException e) {
            return new ControlResponse.Failure("merge", e.errno(), e.getMessage());
        } catch (IOException | RuntimeException e) {
            log.error("merge of {} failed", snapshot, e);
            return new ControlResponse.Failure("merge", Errno.EIO, String.valueOf(e.getMessage()));
        }
    }

    /** The lvconvert --merge sequence; the lines say what was done. */
    private List<String> start(Flow f) throws StepFailed, IOException {
        List<String> lines = new ArrayList<>();
        MappedDevice snap = require(f.snapshot);
        MappedDevice origin = require(f.origin);
        TableLine t = printedLine(snap);
        Table originTable = origin.liveTable();
        // origin, COW, store type, chunk size: the snapshot's arguments without its features
        Table mergeTable = new Table(List.of(new TableLine(
                0, origin.sizeSectors(), "snapshot-merge", t.args().subList(0, 4))));
        try {
            devices.load(f.origin, mergeTable);
        } catch (TableLoadException e) {
            throw new StepFailed("reload", e.errno(), (e.target() == null ? "" : e.target() + ": ") + e.getMessage());
        } catch (DmException e) {
            throw new StepFailed("reload", e.errno(), e.getMessage());
        }
        lines.add("loaded " + f.origin + ": " + mergeTable.toString().strip());
        try {
            origin.suspend();
            lines.add("suspended " + f.origin);
            snap.suspend();
            lines.add("suspended " + f.snapshot);
            if (state != null) {
                // The merge table first, in one atomic replace of the origin's record: when it
                // fails nothing was recorded, and both records stay as they are. Once it is there
                // the merge is decided (a restart restores it, and drops a snapshot record of its
                // COW left by a crash or a failed unlink just below).
                try {
                    state.record(f.origin, origin.uuid(), mergeTable, false, origin.cacheMode());
                } catch (IOException e) {
                    recover(f, origin, snap, originTable, false);
                    throw new StepFailed("merge", StateStore.errnoOf(e), notRecorded(f, e));
                }
                try {
                    state.forget(f.snapshot);
                } catch (IOException e) {
                    log.warn(
                            "{}: cannot remove the record of {} from {}: {} (a restart drops it: its COW is being merged)",
                            f.origin,
                            f.snapshot,
                            state.directory(),
                            e.getMessage());
                }
            }
            try {
                origin.resume();
            } catch (DmException e) {
                // The merge table is live but the device stayed suspended; nothing was handed over.
                recover(f, origin, snap, originTable, true);
                throw new StepFailed("resume", e.errno(), e.getMessage());
            }
            lines.add("resumed " + f.origin + ": the exception store of " + f.snapshot + " was handed over, merging");
            try {
                snap.resume();
                devices.remove(f.snapshot, false);
                lines.add("removed " + f.snapshot + " (it errors all I/O after the handover)");
            } catch (DmException e) {
                lines.add("left " + f.snapshot + " in place: " + e.getMessage()
                        + " (it errors all I/O; remove it once closed)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new StepFailed("merge", Errno.EINTR, "interrupted");
        }
        SnapshotMergeTarget.Progress p = progressOf(origin);
        f.started = true;
        f.totalBytes = p == null ? 0 : p.remainingChunks() * p.chunkBytes();
        persist(f);
        log.info("{}: merging {} ({} bytes on the COW)", f.origin, f.snapshot, f.totalBytes);
        return lines;
    }

    private String notRecorded(Flow f, IOException e) {
        return "cannot record the merge of " + f.snapshot + " in the state directory " + state.directory() + ": "
                + e.getMessage() + "; nothing was changed";
    }

    /**
     * Puts the origin table back and resumes both devices; {@code recorded}: the merge table was
     * recorded (and the snapshot's record dropped), so the snapshot's record comes back first
     * (a crash in between restores the merge, never neither), then the origin's.
     */
    private void recover(Flow f, MappedDevice origin, MappedDevice snap, Table originTable, boolean recorded) {
        try {
            origin.load(originTable, devices.targetTypes(), devices.backingDevices());
            origin.resume();
            snap.resume();
            if (state != null && recorded) {
                state.record(snap);
                state.record(origin);
            }
        } catch (TableLoadException | DmException | InterruptedException | IOException e) {
            log.error(
                    "{}: putting the origin table back after a failed merge start failed: {}",
                    f.origin,
                    e.getMessage());
        }
    }

    // ---- the poller ------------------------------------------------------------------------------

    /** One pass (the daemon calls it every 250 ms): finish complete merges, start deferred ones. */
    public synchronized void check() {
        for (Flow f : List.copyOf(flows.values())) {
            try {
                checkFlow(f);
            } catch (IOException | DmException | TableLoadException | RuntimeException e) {
                report(f, "checking the merge failed: " + e.getMessage());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private void checkFlow(Flow f) throws IOException, DmException, TableLoadException, InterruptedException {
        MappedDevice origin = devices.find(f.origin);
        if (origin == null) {
            return; // not active: the flow waits for its activation
        }
        SnapshotMergeTarget.Progress p = progressOf(origin);
        if (p != null) {
            if (!f.started) { // restored between the record of the merge table and the resume
                f.started = true;
                f.totalBytes = p.remainingChunks() * p.chunkBytes();
                persist(f);
            }
            if (p.complete()) {
                finish(f, origin);
            } else if (!p.valid()) {
                report(
                        f,
                        "the snapshot is invalid: there is nothing to merge; replace the table of " + f.origin
                                + " by hand");
            } else if (p.failed() && !p.running()) {
                report(f, "Merge failed (the daemon log has the error); reactivate " + f.origin + " to retry");
            }
            return;
        }
        TableLine t = printedLine(origin);
        if (t != null && t.targetType().equals("snapshot-origin")) {
            MappedDevice snap = devices.find(f.snapshot);
            if (snap == null) {
                log.warn("{}: {} is gone: dropping its merge", f.origin, f.snapshot);
                forget(f);
                return;
            }
            if (origin.info().openCount() == 0 && !origin.isSuspended()) {
                log.info("{}: no longer open: starting the merge of {}", f.origin, f.snapshot);
                try {
                    start(f);
                } catch (StepFailed e) {
                    log.error(
                            "{}: the merge of {} could not start: {}: {}",
                            f.origin,
                            f.snapshot,
                            e.failure.operation(),
                            e.failure.reason());
                    forget(f);
                }
            }
            return;
        }
        log.warn("{}: its table is no longer the merge of {}: dropping it", f.origin, f.snapshot);
        forget(f);
    }

    /** The merge is complete: snapshot-origin if other snapshots of the origin remain, else linear. */
    private void finish(Flow f, MappedDevice origin)
            throws IOException, DmException, TableLoadException, InterruptedException {
        String originArg = printedLine(origin).args().getFirst();
        boolean others = !devicesWith("snapshot", originArg).isEmpty();
        Table next = new Table(List.of(
                others
                        ? new TableLine(0, origin.sizeSectors(), "snapshot-origin", List.of(originArg))
                        : new TableLine(0, origin.sizeSectors(), "linear", List.of(originArg, "0"))));
        devices.load(f.origin, next);
        origin.resume(state == null ? DeviceRecorder.NONE : state); // not recorded: not live, the next check retries
        forget(f);
        finished.put(
                f.origin,
                MergeReport.finished(
                        f.origin, f.snapshot, f.totalBytes, next.toString().strip()));
        log.info(
                "{}: merge of {} finished; the table is now: {} (the COW {} is no longer used)",
                f.origin,
                f.snapshot,
                next.toString().strip(),
                f.cow);
    }

    private void report(Flow f, String problem) {
        if (!problem.equals(f.reported)) {
            f.reported = problem;
            log.error("{}: merging {}: {}", f.origin, f.snapshot, problem);
        }
    }

    // ---- status ----------------------------------------------------------------------------------

    @Override
    public synchronized ControlResponse status(String name) {
        List<MergeReport> reports = new ArrayList<>();
        try {
            for (Flow f : flows.values()) {
                if (name == null || name.equals(f.origin) || name.equals(f.snapshot)) {
                    reports.add(statusOf(f));
                }
            }
            for (MergeReport done : finished.values()) {
                if (done.concerns(name) && !flows.containsKey(done.row().origin())) {
                    reports.add(done);
                }
            }
            for (MappedDevice d : devices.list()) {
                SnapshotMergeTarget.Progress p = progressOf(d);
                if (p != null && !flows.containsKey(d.name()) && (name == null || name.equals(d.name()))) {
                    reports.add(
                            MergeReport.byHand(d.name(), p, String.join(" ", d.statusLines(StatusType.INFO, false))));
                }
            }
        } catch (IOException | RuntimeException e) {
            return new ControlResponse.Failure("merge-status", Errno.EIO, String.valueOf(e.getMessage()));
        }
        List<String> lines =
                new ArrayList<>(reports.stream().map(MergeReport::line).toList());
        if (reports.isEmpty()) {
            if (name != null) {
                return new ControlResponse.Failure("merge-status", Errno.ENXIO, "no merge of " + name);
            }
            lines.add("No merges");
        }
        return ControlResponse.success(
                lines, new MergeStatus(reports.stream().map(MergeReport::row).toList()));
    }

    private MergeReport statusOf(Flow f) throws IOException {
        MappedDevice origin = devices.find(f.origin);
        SnapshotMergeTarget.Progress p = origin == null ? null : progressOf(origin);
        if (p == null) {
            return MergeReport.waiting(
                    f.origin,
                    f.snapshot,
                    f.cow,
                    origin != null,
                    origin == null ? 0 : origin.info().openCount());
        }
        return MergeReport.running(
                f.origin,
                f.snapshot,
                f.cow,
                f.totalBytes,
                p,
                String.join(" ", origin.statusLines(StatusType.INFO, false)));
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private ControlResponse success(List<String> lines, Flow f, String st) {
        return ControlResponse.success(lines, new MergeStarted(f.origin, f.snapshot, st));
    }

    private MappedDevice require(String name) throws StepFailed {
        MappedDevice d = devices.find(name);
        if (d == null) {
            throw new StepFailed("merge", Errno.ENXIO, "Device " + name + " not found");
        }
        return d;
    }

    /** The merge target of a device whose table is a single snapshot-merge line, or null. */
    private static SnapshotMergeTarget.Progress progressOf(MappedDevice d) throws IOException {
        List<Target> targets = d.liveTargets();
        if (targets.size() == 1 && targets.getFirst() instanceof SnapshotMergeTarget m) {
            return m.progress();
        }
        return null;
    }

    /** A device's single live table line as table status prints it, or null. */
    private static TableLine printedLine(MappedDevice d) {
        List<TableLine> lines = d.printedTable(false).lines();
        return lines.size() == 1 ? lines.getFirst() : null;
    }

    /** Devices whose single live line is {@code type} over the origin {@code originArg}. */
    private List<MappedDevice> devicesWith(String type, String originArg) throws IOException {
        List<MappedDevice> found = new ArrayList<>();
        for (MappedDevice d : devices.list()) {
            TableLine t = printedLine(d);
            if (t != null
                    && t.targetType().equals(type)
                    && !t.args().isEmpty()
                    && t.args().getFirst().equals(originArg)) {
                found.add(d);
            }
        }
        return found;
    }

    private void persist(Flow f) throws IOException {
        records.write(f.entry());
    }

    private void forget(Flow f) throws IOException {
        flows.remove(f.origin);
        records.delete(f.origin);
    }
}
