package dmsnap.cli;

import dmsnap.control.ControlRequest;
import java.util.ArrayList;
import java.util.List;

/**
 * The tables the LVM-style commands read from the daemon, as the text {@code dmsnap table}
 * prints: the one place that splits that text into words.
 */
final class DeviceTables {
    private final DaemonSteps steps;

    DeviceTables(DaemonSteps steps) {
        this.steps = steps;
    }

    /** The single line of {@code name}'s live table, split into words. */
    String[] tableOf(String name) throws StepFailed {
        return tableOf(name, false);
    }

    /** The single line of {@code name}'s live (or inactive) table, split into words. */
    String[] tableOf(String name, boolean inactive) throws StepFailed {
        List<String> lines = steps.run(
                null, new ControlRequest("table", name, null, null, null, inactive, false, false, false, false));
        if (lines.size() != 1) {
            steps.spec
                    .commandLine()
                    .getErr()
                    .println("dmsnap: " + name + " has " + lines.size() + (inactive ? " inactive" : "")
                            + " table lines; expected one");
            throw new StepFailed(ExitCodes.FAILED);
        }
        return lines.getFirst().split(" ");
    }

    /** Devices whose live table is a snapshot-origin over {@code originDevice}. */
    List<String> originsOf(String originDevice) throws StepFailed {
        List<String> names = new ArrayList<>();
        for (String line : steps.run(
                null, new ControlRequest("table", null, null, null, null, false, false, false, false, false))) {
            String[] w = line.split(" ");
            if (w.length >= 5 && w[3].equals("snapshot-origin") && w[4].equals(originDevice)) {
                names.add(w[0].substring(0, w[0].length() - 1));
            }
        }
        return names;
    }
}
