package dmsnap.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
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

/** {@code dmsnap cow dump}: the header and every exception in on-disk order. */
@Command(name = "dump",
        description = {"Print a persistent COW's header and every exception in on-disk order (area, index),",
            "and the usage dmsetup status would show after loading it."},
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
            out.println(toJson(path, report).toPrettyString());
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
            out.println("exceptions_per_area=" + report.exceptionsPerArea() + " areas_read=" + report.areas().size()
                    + " exceptions=" + report.exceptions().size());
            int next = 0;
            for (CowInspector.Area area : report.areas()) {
                out.println("  area " + area.index() + ": metadata chunk " + area.chunk() + ", " + area.entries() + " entries");
                for (int i = 0; i < area.entries(); i++) {
                    CowInspector.Entry e = report.exceptions().get(next++);
                    out.println("  [" + e.area() + ":" + e.index() + "] old_chunk=" + e.oldChunk() + " new_chunk=" + e.newChunk());
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

    static ObjectNode toJson(Path path, Report report) {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("path", path.toString());
        root.put("sizeBytes", report.sizeBytes());
        if (report.header() != null) {
            ObjectNode h = root.putObject("header");
            h.put("magic", String.format("0x%08x", report.header().magic()));
            h.put("valid", report.header().valid());
            h.put("version", report.header().version());
            h.put("chunkSize", Integer.toUnsignedLong(report.header().chunkSectors()));
        }
        if (report.chunkSize() != null) {
            root.put("exceptionsPerArea", report.exceptionsPerArea());
            ArrayNode areas = root.putArray("areas");
            int next = 0;
            for (CowInspector.Area area : report.areas()) {
                ObjectNode a = areas.addObject();
                a.put("area", area.index());
                a.put("metadataChunk", area.chunk());
                ArrayNode entries = a.putArray("exceptions");
                for (int i = 0; i < area.entries(); i++) {
                    CowInspector.Entry e = report.exceptions().get(next++);
                    ObjectNode x = entries.addObject();
                    x.put("index", e.index());
                    x.put("oldChunk", e.oldChunk());
                    x.put("newChunk", e.newChunk());
                }
            }
            root.put("exceptions", report.exceptions().size());
            root.put("usage", report.derivedUsage());
        }
        ArrayNode notes = root.putArray("notes");
        report.notes().forEach(notes::add);
        ArrayNode problems = root.putArray("problems");
        for (CowInspector.Problem p : report.problems()) {
            ObjectNode x = problems.addObject();
            x.put("area", p.area());
            x.put("entry", p.entry());
            x.put("byteOffset", p.byteOffset());
            x.put("message", p.message());
        }
        return root;
    }
}
