package dmsnap.cli;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonUnwrapped;
import dmsnap.control.Json;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.CowInspector;
import dmsnap.store.persistent.CowInspector.Report;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap cow dump}: the header and every exception in on-disk order. */
@Command(
        name = "dump",
        description = {
            "Print a persistent COW's header and every exception in on-disk order (area, index),",
            "and the usage dmsetup status would show after loading it."
        },
        footer = {"", "Example:", "  ./dmsnap cow dump /img/cow", "  ./dmsnap cow dump /img/cow --json"})
final class CowDumpCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "PATH", description = "COW file or block device.")
    Path path;

    @Option(names = "--json", description = "Print JSON instead of text.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        Report report;
        try (FileDevice cow = FileDevice.open(path, FileDevice.Option.READ_ONLY)) {
            report = CowInspector.inspect(cow, 512, -1);
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(Json.writePretty(toJson(path, report)));
        } else {
            printText(out, path, report);
        }
        return ExitCodes.OK;
    }

    /** The layout of the kernel fixtures' cowdump.txt. */
    static void printText(PrintWriter out, Path path, Report report) {
        out.println("cow " + path.getFileName() + ": " + report.sizeBytes() + " bytes");
        if (report.header() != null) {
            out.println("header " + report.header());
        }
        if (report.chunkSize() != null) {
            out.println("exceptions_per_area=" + report.exceptionsPerArea() + " areas_read="
                    + report.areas().size() + " exceptions="
                    + report.exceptions().size());
            int next = 0;
            for (CowInspector.Area area : report.areas()) {
                out.println("  area " + area.index() + ": metadata chunk " + area.chunk() + ", " + area.entries()
                        + " entries");
                for (int i = 0; i < area.entries(); i++) {
                    CowInspector.Entry e = report.exceptions().get(next++);
                    out.println("  [" + e.area() + ":" + e.index() + "] old_chunk=" + e.oldChunk() + " new_chunk="
                            + e.newChunk());
                }
            }
            String usage = report.derivedUsage();
            if (usage != null) {
                out.println("derived usage: " + usage + " (sectors allocated/total metadata, as dmsetup status)");
            }
        }
        for (String note : report.notes()) {
            out.println("note: " + note);
        }
        for (CowInspector.Problem p : report.problems()) {
            out.println("problem: " + p);
        }
    }

    /**
     * {@code cow dump --json} (and {@code cow check --json}): the header when there is one; the
     * areas, exception count and usage ({@code null} when it cannot be derived) when the chunk size is
     * known; notes and problems always.
     */
    record CowJson(
            String path,
            long sizeBytes,
            @JsonInclude(JsonInclude.Include.NON_NULL) HeaderJson header,
            @JsonUnwrapped LayoutJson layout,
            List<String> notes,
            List<ProblemJson> problems) {}

    /** {@code magic} in hex as the kernel sources write it ({@code 0x70416e53}). */
    record HeaderJson(String magic, int valid, int version, long chunkSize) {}

    /** Present only when the chunk size is known; unwrapped into {@link CowJson}. */
    record LayoutJson(long exceptionsPerArea, List<AreaJson> areas, int exceptions, String usage) {}

    record AreaJson(long area, long metadataChunk, List<ExceptionJson> exceptions) {}

    record ExceptionJson(int index, long oldChunk, long newChunk) {}

    record ProblemJson(long area, int entry, long byteOffset, String message) {}

    static CowJson toJson(Path path, Report report) {
        HeaderJson header = report.header() == null
                ? null
                : new HeaderJson(
                        String.format("0x%08x", report.header().magic()),
                        report.header().valid(),
                        report.header().version(),
                        Integer.toUnsignedLong(report.header().chunkSectors()));
        LayoutJson layout = null;
        if (report.chunkSize() != null) {
            List<AreaJson> areas = new ArrayList<>();
            int next = 0;
            for (CowInspector.Area area : report.areas()) {
                List<ExceptionJson> entries = new ArrayList<>();
                for (int i = 0; i < area.entries(); i++) {
                    CowInspector.Entry e = report.exceptions().get(next++);
                    entries.add(new ExceptionJson(e.index(), e.oldChunk(), e.newChunk()));
                }
                areas.add(new AreaJson(area.index(), area.chunk(), entries));
            }
            layout = new LayoutJson(
                    report.exceptionsPerArea(), areas, report.exceptions().size(), report.derivedUsage());
        }
        List<ProblemJson> problems = report.problems().stream()
                .map(p -> new ProblemJson(p.area(), p.entry(), p.byteOffset(), p.message()))
                .toList();
        return new CowJson(path.toString(), report.sizeBytes(), header, layout, report.notes(), problems);
    }
}
