package dmsnap.cli;

import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.CowInspector;
import dmsnap.store.persistent.CowInspector.Report;
import dmsnap.store.persistent.SnapshotImage;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.function.LongConsumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code dmsnap cow read}: writes the snapshot view of an origin and a persistent COW to a file. */
@Command(
        name = "read",
        description = {
            "Write the snapshot view (what the snapshot device reads) of an origin and a persistent",
            "COW to a new file, and print its sha256. Refuses a damaged or invalidated COW."
        },
        footer = {"", "Example:", "  ./dmsnap cow read --origin /img/base --cow /img/cow --out /img/snapshot.raw"})
final class CowReadCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(
            names = "--origin",
            required = true,
            paramLabel = "PATH",
            description = "The origin the snapshot was taken of.")
    Path origin;

    @Option(names = "--cow", required = true, paramLabel = "PATH", description = "The snapshot's persistent COW.")
    Path cowPath;

    @Option(
            names = "--out",
            required = true,
            paramLabel = "PATH",
            description = "The file to write (must not exist unless --force).")
    Path out;

    @Option(names = "--force", description = "Overwrite --out if it exists.")
    boolean force;

    @Override
    public Integer call() throws IOException {
        if (Files.exists(out) && !force) {
            throw new IllegalArgumentException(out + " exists; use --force to overwrite it");
        }
        try (FileDevice originDevice = FileDevice.open(origin, FileDevice.Option.READ_ONLY);
                FileDevice cow = FileDevice.open(cowPath, FileDevice.Option.READ_ONLY)) {
            Report report = CowInspector.inspect(cow, originDevice.logicalBlockBytes(), originDevice.sizeSectors());
            if (report.chunkSize() == null || !report.clean()) {
                String why = !report.problems().isEmpty()
                        ? report.problems().getFirst().toString()
                        : report.notes().isEmpty()
                                ? "no usable header"
                                : report.notes().getFirst();
                throw new IOException(cowPath + " cannot be read as a snapshot: " + why);
            }
            if (report.header().valid() == 0) {
                throw new IOException(
                        cowPath + " is an invalidated snapshot (valid=0): the kernel reads it as Invalid");
            }
            try (RandomAccessFile f = new RandomAccessFile(out.toFile(), "rw")) {
                f.setLength(originDevice.sizeBytes());
            }
            String sha;
            try (FileDevice target = FileDevice.open(out);
                    ProgressLine bar = ProgressLine.onTerminal("cow read", originDevice.sizeBytes())) {
                LongConsumer progress = bar == null ? done -> {} : bar::update;
                sha = SnapshotImage.write(originDevice, cow, report.chunkSize(), report.remaps(), target, progress);
            }
            spec.commandLine()
                    .getOut()
                    .println("wrote " + out + ": " + originDevice.sizeBytes() + " bytes, "
                            + report.exceptions().size() + " chunks from the COW");
            spec.commandLine().getOut().println("snapshot view sha256 " + sha);
        }
        return ExitCodes.OK;
    }
}
