package dmsnap.control;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dmsnap.device.DeviceInfo;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.table.Table;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.StatusType;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
    private static final ObjectMapper JSON = new ObjectMapper();

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
                    dm.load(requireName(r), parse(r), r.readOnly());
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
                case "version" -> new ControlResponse.Success(List.of("Library version:   dmsnap " + version,
                        "Driver version:    dmsnap " + version), null);
                case "targets" -> targets();
                case "merge" -> merges == null ? noMerges(r) : merges.merge(requireName(r));
                case "merge-status" -> merges == null ? noMerges(r) : merges.status(r.name());
                default -> new ControlResponse.Failure(r.verb(), "EINVAL", "unknown request '" + dmsnap.device.DeviceManager.quoted(r.verb()) + "'");
            };
        } catch (TableLoadException e) {
            String operation = r.verb().equals("create") || r.verb().equals("load") ? "reload" : r.verb();
            return new ControlResponse.Failure(operation, e.errno(), (e.target() == null ? "" : e.target() + ": ")
                    + e.getMessage());
        } catch (DmException e) {
            return new ControlResponse.Failure(r.verb(), e.errno(), e.getMessage());
        } catch (IllegalArgumentException e) {
            return new ControlResponse.Failure(r.verb(), "EINVAL", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new ControlResponse.Failure(r.verb(), "EINTR", "interrupted");
        } catch (IOException | RuntimeException e) {
            log.error("{} failed", r.verb(), e);
            return new ControlResponse.Failure(r.verb(), "EIO", String.valueOf(e.getMessage()));
        }
    }

    private static ControlResponse noMerges(ControlRequest r) {
        return new ControlResponse.Failure(r.verb(), "EINVAL", "this daemon runs no merge flow");
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
        String name = requireName(r);
        dm.create(name, r.uuid(), null);
        if (table == null) {
            return ok();
        }
        try {
            dm.load(name, table, r.readOnly());
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

    private ControlResponse status(ControlRequest r) throws IOException, DmException {
        StatusType type = r.verb().equals("status") ? StatusType.INFO : StatusType.TABLE;
        List<String> lines = new ArrayList<>();
        ObjectNode data = JSON.createObjectNode();
        if (r.name() != null) {
            MappedDevice d = dm.get(r.name());
            List<String> mine = d.statusLines(type, r.inactive());
            lines.addAll(mine);
            ArrayNode a = data.putArray(d.name());
            mine.forEach(a::add);
        } else {
            List<MappedDevice> all = dm.list();
            if (all.isEmpty()) {
                lines.add("No devices found");
            }
            for (MappedDevice d : all) {
                List<String> mine = d.statusLines(type, r.inactive());
                ArrayNode a = data.putArray(d.name());
                mine.forEach(a::add);
                if (mine.isEmpty()) {
                    lines.add(d.name() + ": ");
                }
                for (String line : mine) {
                    lines.add(d.name() + ": " + line);
                }
            }
        }
        return new ControlResponse.Success(lines, data);
    }

    private ControlResponse info(ControlRequest r) throws DmException {
        List<MappedDevice> devices = r.name() == null ? dm.list() : List.of(dm.get(r.name()));
        List<String> lines = new ArrayList<>();
        ArrayNode data = JSON.createArrayNode();
        for (MappedDevice d : devices) {
            if (!lines.isEmpty()) {
                lines.add("");
            }
            DeviceInfo info = d.info();
            lines.addAll(List.of(info.dmsetupText().split("\n")));
            ObjectNode n = data.addObject();
            n.put("name", info.name());
            n.put("uuid", info.uuid());
            n.put("state", info.suspended() ? "SUSPENDED" : "ACTIVE");
            n.put("readOnly", info.readOnly());
            n.put("tablesPresent", info.tablesPresent());
            n.put("openCount", info.openCount());
            n.put("eventNumber", info.eventNumber());
            n.put("major", info.major());
            n.put("minor", info.minor());
            n.put("targets", info.targets());
        }
        if (devices.isEmpty()) {
            lines.add("No devices found");
        }
        ObjectNode wrapper = JSON.createObjectNode();
        wrapper.set("devices", data);
        return new ControlResponse.Success(lines, wrapper);
    }

    private ControlResponse ls() {
        List<String> lines = new ArrayList<>();
        ObjectNode data = JSON.createObjectNode();
        for (MappedDevice d : dm.list()) {
            lines.add(d.name() + "\t(" + DeviceManager.DM_MAJOR + ":" + d.minor() + ")");
            data.put(d.name(), DeviceManager.DM_MAJOR + ":" + d.minor());
        }
        if (lines.isEmpty()) {
            lines.add("No devices found");
        }
        return new ControlResponse.Success(lines, data);
    }

    private ControlResponse targets() {
        List<String> lines = new ArrayList<>();
        ObjectNode data = JSON.createObjectNode();
        for (Map.Entry<String, String> e : dm.targetTypes().versions().entrySet()) {
            lines.add(String.format("%-16s v%s", e.getKey(), e.getValue()));
            data.put(e.getKey(), e.getValue());
        }
        return new ControlResponse.Success(lines, data);
    }
}
