package dmsnap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.table.Table;
import dmsnap.table.TableLine;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tables the LVM-style commands read from the daemon: its answer to {@code table} (a map of
 * device name to table lines) read through the engine's {@link TableParser}, so the commands see
 * typed lines, never words of text.
 */
final class DeviceTables {
    private final DaemonSteps steps;

    DeviceTables(DaemonSteps steps) {
        this.steps = steps;
    }

    /** The single line of {@code name}'s live table. */
    TableLine tableOf(String name) throws StepFailed {
        return tableOf(name, false);
    }

    /** The single line of {@code name}'s live (or inactive) table. */
    TableLine tableOf(String name, boolean inactive) throws StepFailed {
        Table table = tables(new ControlRequest("table", name, null, null, null, inactive, false, false, false, false))
                .get(name);
        if (table == null || table.lines().size() != 1) {
            steps.spec
                    .commandLine()
                    .getErr()
                    .println("dmsnap: " + name + " has "
                            + (table == null ? 0 : table.lines().size()) + (inactive ? " inactive" : "")
                            + " table lines; expected one");
            throw new StepFailed(ExitCodes.FAILED);
        }
        return table.lines().getFirst();
    }

    /** Devices whose live table is a snapshot-origin over {@code originDevice}. */
    List<String> originsOf(String originDevice) throws StepFailed {
        List<String> names = new ArrayList<>();
        Map<String, Table> all =
                tables(new ControlRequest("table", null, null, null, null, false, false, false, false, false));
        all.forEach((name, table) -> {
            if (table.lines().stream()
                    .anyMatch(l -> l.targetType().equals("snapshot-origin")
                            && !l.args().isEmpty()
                            && l.args().getFirst().equals(originDevice))) {
                names.add(name);
            }
        });
        return names;
    }

    /** The tables in the daemon's answer to {@code request}, by device name (a device without one maps to none). */
    private Map<String, Table> tables(ControlRequest request) throws StepFailed {
        ControlResponse.Success answer = steps.success(request);
        JsonNode data = answer.data();
        Map<String, Table> tables = new LinkedHashMap<>();
        if (data == null || !data.isObject()) {
            throw unreadable("no table data");
        }
        for (Map.Entry<String, JsonNode> device : data.properties()) {
            StringBuilder text = new StringBuilder();
            for (JsonNode line : device.getValue()) {
                text.append(line.asText()).append('\n');
            }
            if (text.isEmpty()) {
                continue; // no table loaded
            }
            try {
                tables.put(device.getKey(), TableParser.parse(text.toString()));
            } catch (TableLoadException e) {
                throw unreadable(device.getKey() + "'s table: " + e.getMessage());
            }
        }
        return tables;
    }

    private StepFailed unreadable(String what) {
        steps.spec
                .commandLine()
                .getErr()
                .println("dmsnap: the daemon at " + steps.client.socketPath()
                        + " gave an answer this command cannot read (" + what + "; a daemon of another version?)");
        return new StepFailed(ExitCodes.FAILED);
    }
}
