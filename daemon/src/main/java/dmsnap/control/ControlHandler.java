package dmsnap.control;

import dmsnap.device.DeviceInfo;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.table.Table;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.CacheMode;
import dmsnap.target.StatusType;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Executes control requests on the engine and renders what dmsetup prints. Failures become
 * {@link ControlResponse.Failure}s carrying the operation, errno and the kernel's reason; nothing
 * changes on a failed request (the engine's operations are all-or-nothing). Every change of a
 * live table, name or device is recorded by the {@link DeviceRecorder} before it takes effect
 * (the daemon's state directory): a change it cannot record fails and is not made.
 */
public final class ControlHandler {
    private static final Logger log = LoggerFactory.getLogger(ControlHandler.class);

    private final DeviceManager dm;
    private final String version;
    private final DeviceRecorder recorder;
    private final MergeService merges;

    public ControlHandler(DeviceManager dm, String version) {
        this(dm, version, DeviceRecorder.NONE);
    }

    public ControlHandler(DeviceManager dm, String version, DeviceRecorder recorder) {
        this(dm, version, recorder, null);
    }

    /** With the daemon's merge flow behind the {@code merge} and {@code merge-status} verbs. */
    public ControlHandler(DeviceManager dm, String version, DeviceRecorder recorder, MergeService merges) {
        this.dm = dm;
        this.version = version;
        this.recorder = recorder;
        this.merges = merges;
    }

    public ControlResponse handle(ControlRequest r) {
        try {
            return switch (r.verb()) {
                case "create" -> create(r);
                case "load" -> {
                    dm.load(requireName(r), parse(r), r.readOnly(), cacheMode(r));
                    yield ok();
                }
                case "clear" -> {
                    dm.get(requireName(r)).clear();
                    yield ok();
                }
                case "suspend" -> {
                    dm.get(requireName(r)).suspend(r.noflush());
                    yield ok();
                }
                case "resume" -> {
                    dm.get(requireName(r)).resume(recorder);
                    yield ok();
                }
                case "remove" -> {
                    dm.remove(requireName(r), r.force(), recorder);
                    yield ok();
                }
                case "rename" -> {
                    dm.rename(requireName(r), r.newName(), recorder);
                    yield ok();
                }
                case "status", "table" -> status(r);
                case "info" -> info(r);
                case "ls" -> ls();
                case "version" ->
                    new ControlResponse.Success(
                            List.of("Library version:   dmsnap " + version, "Driver version:    dmsnap " + version),
                            null);
                case "targets" -> targets();
                case "changed" -> {
                    Collected all = new Collected();
                    changed(r, all);
                    yield all.response();
                }
                case "merge" -> merges == null ? noMerges(r) : merges.merge(requireName(r));
                case "merge-status" -> merges == null ? noMerges(r) : merges.status(r.name());
                default ->
                    new ControlResponse.Failure(
                            r.verb(),
                            Errno.EINVAL,
                            "unknown request '" + dmsnap.device.DeviceManager.quoted(r.verb()) + "'");
            };
        } catch (TableLoadException | DmException | InterruptedException | IOException | RuntimeException e) {
            return failure(r, e);
        }
    }

    /** The failure answering {@code r} that {@code e} ended: its errno and reason. */
    private static ControlResponse.Failure failure(ControlRequest r, Exception e) {
        return switch (e) {
            case TableLoadException t -> {
                String operation = r.verb().equals("create") || r.verb().equals("load") ? "reload" : r.verb();
                yield new ControlResponse.Failure(
                        operation, t.errno(), (t.target() == null ? "" : t.target() + ": ") + t.getMessage());
            }
            case DmException d -> new ControlResponse.Failure(r.verb(), d.errno(), d.getMessage());
            case IllegalArgumentException i -> new ControlResponse.Failure(r.verb(), Errno.EINVAL, i.getMessage());
            case InterruptedException i -> {
                Thread.currentThread().interrupt();
                yield new ControlResponse.Failure(r.verb(), Errno.EINTR, "interrupted");
            }
            default -> {
                log.error("{} failed", r.verb(), e);
                yield new ControlResponse.Failure(r.verb(), Errno.EIO, String.valueOf(e.getMessage()));
            }
        };
    }

    /**
     * Answers {@code r} on {@code out}: its response line, or for {@code changed} the answer as the
     * walk makes it ({@link ChangedStream}), which no reply of a million extents is built for.
     *
     * @return the failure answered, if any (for the log)
     * @throws IOException writing to {@code out} failed: the client went away
     */
    public ControlResponse.Failure answer(ControlRequest r, OutputStream out) throws IOException {
        if (!r.verb().equals("changed")) {
            ControlResponse response = handle(r);
            out.write((response.toJson() + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            return response instanceof ControlResponse.Failure f ? f : null;
        }
        ChangedStream.Writer writer = new ChangedStream.Writer(out);
        try {
            changed(r, writer);
            return null;
        } catch (ChangedStream.WriteFailed e) {
            throw e;
        } catch (DmException | InterruptedException | IOException | RuntimeException e) {
            ControlResponse.Failure f = failure(r, e);
            writer.fail(f);
            return f;
        }
    }

    private static ControlResponse noMerges(ControlRequest r) {
        return new ControlResponse.Failure(r.verb(), Errno.EINVAL, "this daemon runs no merge flow");
    }

    private static ControlResponse ok() {
        return new ControlResponse.Success(List.of(), null);
    }

    private static String requireName(ControlRequest r) {
        if (r.name() == null || r.name().isEmpty()) {
            throw new IllegalArgumentException(r.verb() + " needs a device name");
        }
        return r.name();
    }

    /** The request's {@code --cache MODE}, or null (the device's mode, or the daemon's default). */
    private static CacheMode cacheMode(ControlRequest r) {
        return r.cache() == null ? null : CacheMode.parse(r.cache());
    }

    private static Table parse(ControlRequest r) throws TableLoadException {
        if (r.table() == null) {
            throw new IllegalArgumentException(r.verb() + " needs a table");
        }
        return TableParser.parse(r.table());
    }

    /**
     * dmsetup create: create, then (with a table) load and resume; when the load or the resume
     * (its table recorded first) fails the device is removed again, and the failure names the step
     * ("reload", "resume"). A device without a table is not recorded: there is nothing to restore.
     */
    private ControlResponse create(ControlRequest r) throws DmException, TableLoadException, InterruptedException {
        Table table = r.notable() || r.table() == null ? null : parse(r);
        CacheMode cache = cacheMode(r);
        String name = requireName(r);
        dm.create(name, r.uuid(), null);
        if (table == null) {
            return ok();
        }
        try {
            dm.load(name, table, r.readOnly(), cache);
        } catch (TableLoadException e) {
            dm.remove(name, true);
            throw e;
        }
        MappedDevice device = dm.get(name);
        try {
            device.resume(recorder);
        } catch (DmException e) {
            // A live table was recorded (a preresume hook refused it): its record goes with it.
            dm.remove(name, true, device.liveTable() == null ? DeviceRecorder.NONE : recorder);
            return new ControlResponse.Failure("resume", e.errno(), e.getMessage());
        }
        return ok();
    }

    /** status, table: the lines as dmsetup prints them; the data maps each device to its lines. */
    private ControlResponse status(ControlRequest r) throws IOException, DmException {
        StatusType type = r.verb().equals("status") ? StatusType.INFO : StatusType.TABLE;
        if (r.name() != null) {
            MappedDevice d = dm.get(r.name());
            List<String> mine = d.statusLines(type, r.inactive());
            return ControlResponse.success(mine, Map.of(d.name(), mine));
        }
        List<String> lines = new ArrayList<>();
        Map<String, List<String>> data = new LinkedHashMap<>();
        List<MappedDevice> all = dm.list();
        if (all.isEmpty()) {
            lines.add("No devices found");
        }
        for (MappedDevice d : all) {
            List<String> mine = d.statusLines(type, r.inactive());
            data.put(d.name(), mine);
            if (mine.isEmpty()) {
                lines.add(d.name() + ": ");
            }
            for (String line : mine) {
                lines.add(d.name() + ": " + line);
            }
        }
        return ControlResponse.success(lines, data);
    }

    /**
     * The extents of a device changed since a snapshot of its origin was taken, from the same map
     * as NBD's {@code dmsnap:changed:S} block status, into {@code out} as the walk finds them
     * ({@link ChangedWalk}); a refusal is thrown before anything goes out.
     */
    private void changed(ControlRequest r, ChangedExtents out) throws DmException, IOException, InterruptedException {
        MappedDevice d = dm.get(requireName(r));
        String since = r.since();
        if (since == null || since.isEmpty()) {
            throw new IllegalArgumentException("changed needs the snapshot to compare with");
        }
        Set<String> baselines = d.baselines();
        if (!baselines.contains(since)) {
            throw new DmException(
                    Errno.EINVAL,
                    d.name() + " cannot be compared with " + DeviceManager.quoted(since)
                            + (baselines.isEmpty()
                                    ? ": it is no origin or snapshot with another valid snapshot"
                                    : ": not a valid snapshot of its origin (these are: " + String.join(", ", baselines)
                                            + ")"));
        }
        ChangedWalk.walk(d, since, out);
    }

    /**
     * A {@code changed} answer in memory, for a caller in the daemon's process ({@link #handle}):
     * one line per changed extent, "OFFSET LENGTH" in bytes, and {@link ResponseData.Changed}.
     */
    private static final class Collected implements ChangedExtents {
        private final List<String> lines = new ArrayList<>();
        private final List<ResponseData.Extent> extents = new ArrayList<>();
        private String device;
        private String since;
        private long sizeBytes;
        private long changedBytes;

        @Override
        public void start(String device, String since, long sizeBytes) {
            this.device = device;
            this.since = since;
            this.sizeBytes = sizeBytes;
        }

        @Override
        public void extent(long offsetBytes, long lengthBytes) {
            lines.add(offsetBytes + " " + lengthBytes);
            extents.add(new ResponseData.Extent(offsetBytes, lengthBytes));
        }

        @Override
        public void end(long changedBytes) {
            this.changedBytes = changedBytes;
        }

        ControlResponse response() {
            return ControlResponse.success(
                    lines, new ResponseData.Changed(device, since, sizeBytes, changedBytes, extents));
        }
    }

    private ControlResponse info(ControlRequest r) throws DmException {
        List<MappedDevice> devices = r.name() == null ? dm.list() : List.of(dm.get(r.name()));
        List<String> lines = new ArrayList<>();
        List<ResponseData.Device> data = new ArrayList<>();
        for (MappedDevice d : devices) {
            if (!lines.isEmpty()) {
                lines.add("");
            }
            DeviceInfo info = d.info();
            for (String line : info.dmsetupText().split("\n")) {
                lines.add(line);
                if (line.startsWith("Number of targets:") && info.cacheMode() != null) {
                    lines.add("Cache mode:        " + info.cacheMode().text()); // dmsnap's, after the table's line
                }
            }
            data.add(new ResponseData.Device(
                    info.name(),
                    info.uuid(),
                    info.suspended() ? "SUSPENDED" : "ACTIVE",
                    info.readOnly(),
                    info.tablesPresent(),
                    info.openCount(),
                    info.eventNumber(),
                    info.major(),
                    info.minor(),
                    info.targets(),
                    info.cacheMode() == null ? null : info.cacheMode().text()));
        }
        if (devices.isEmpty()) {
            lines.add("No devices found");
        }
        return ControlResponse.success(lines, new ResponseData.Info(data));
    }

    /** ls: the data maps each device to its major:minor. */
    private ControlResponse ls() {
        Map<String, String> data = dm.list().stream()
                .collect(Collectors.toMap(
                        MappedDevice::name,
                        d -> DeviceManager.DM_MAJOR + ":" + d.minor(),
                        (a, b) -> a,
                        LinkedHashMap::new));
        List<String> lines = new ArrayList<>();
        data.forEach((name, number) -> lines.add(name + "\t(" + number + ")"));
        if (lines.isEmpty()) {
            lines.add("No devices found");
        }
        return ControlResponse.success(lines, data);
    }

    private ControlResponse targets() {
        Map<String, String> versions = dm.targetTypes().versions();
        List<String> lines = new ArrayList<>();
        versions.forEach((name, version) -> lines.add(String.format("%-16s v%s", name, version)));
        return ControlResponse.success(lines, versions);
    }
}
