package dmsnap.cli;

import dmsnap.control.Json;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.CowInspector;
import dmsnap.store.persistent.CowInspector.Report;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap cow check}: everything the loader relies on, each problem located. */
@Command(
        name = "check",
        description = {
            "Validate a persistent COW: header, chunk size, every area and entry (targets inside",
            "the COW and not metadata, no COW chunk or origin chunk used twice, a terminator, no stale",
            "entries after it; with --origin, every origin chunk inside the origin). Each problem is",
            "printed with its area, entry and byte offset. Nothing is written."
        },
        exitCodeListHeading = "%nExit status:%n",
        exitCodeList = {"0:clean", "1:problems found", "3:could not read the COW (or the origin)"},
        footer = {"", "Example:", "  ./dmsnap cow check /img/cow --origin /img/base"})
final class CowCheckCommand implements Callable<Integer> {
    static final int PROBLEMS = 1;
    static final int UNREADABLE = 3;

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "PATH", description = "COW file or block device.")
    Path path;

    @Option(names = "--origin", paramLabel = "PATH", description = "The origin, to check old chunks against its size.")
    Path origin;

    @Option(names = "--json", description = "Print JSON (the dump with its problems) instead of text.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        Report report;
        try {
            long originSectors = -1;
            int originBlock = 512;
            if (origin != null) {
                try (FileDevice o = FileDevice.open(origin, FileDevice.Option.READ_ONLY)) {
                    originSectors = o.sizeSectors();
                    originBlock = o.logicalBlockBytes();
                }
            }
            try (FileDevice cow = FileDevice.open(path, FileDevice.Option.READ_ONLY)) {
                report = CowInspector.inspect(cow, originBlock, originSectors);
            }
        } catch (IOException e) {
            spec.commandLine().getErr().println("dmsnap: cow check " + path + ": could not read: " + e.getMessage());
            return UNREADABLE;
        }
        if (json) {
            out.println(Json.writePretty(CowDumpCommand.toJson(path, report)));
            return report.clean() ? ExitCodes.OK : PROBLEMS;
        }
        String name = path.toString();
        for (CowInspector.Problem p : report.problems()) {
            out.println(name + ": " + p);
        }
        for (String note : report.notes()) {
            out.println(name + ": note: " + note);
        }
        if (report.clean()) {
            StringBuilder summary = new StringBuilder(name).append(": clean");
            if (report.header() != null && report.chunkSize() != null) {
                summary.append(": ")
                        .append(report.header())
                        .append(", ")
                        .append(report.exceptions().size())
                        .append(" exceptions in ")
                        .append(report.areas().size())
                        .append(report.areas().size() == 1 ? " area" : " areas");
                if (report.derivedUsage() != null) {
                    summary.append(", usage ").append(report.derivedUsage());
                }
            }
            out.println(summary);
            return ExitCodes.OK;
        }
        out.println(
                name + ": " + report.problems().size() + (report.problems().size() == 1 ? " problem" : " problems"));
        return PROBLEMS;
    }
}
