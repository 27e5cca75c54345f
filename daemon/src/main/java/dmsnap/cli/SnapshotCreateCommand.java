package dmsnap.cli;

import dmsnap.control.ControlRequest;
import dmsnap.table.TableLine;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap snapshot create} (lvcreate -s): the COW file, then the snapshot added with its origin suspended. */
@Command(
        name = "create",
        description = {
            "Create a snapshot of an origin device: creates or extends the COW file,",
            "suspends the origin while the snapshot is added, resumes it (so it splits writes at the new chunk size)."
        },
        footer = {
            "",
            "Example:",
            "  dmsnap snapshot create vol vol-snap --cow /img/vol-snap.cow --cow-size 1G --chunk-size 8"
        })
final class SnapshotCreateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ClientOptions options;

    @Parameters(index = "0", paramLabel = "ORIGIN", description = "The origin device (snapshot-origin).")
    String origin;

    @Parameters(index = "1", paramLabel = "SNAP")
    String name;

    @Option(
            names = "--cow",
            required = true,
            paramLabel = "PATH",
            description = "COW file (created if missing) or block device.")
    Path cow;

    @Option(names = "--cow-size", paramLabel = "SIZE", description = "Create or extend the COW file to SIZE (e.g. 1G).")
    String cowSize;

    @Option(
            names = "--chunk-size",
            paramLabel = "SECTORS",
            defaultValue = "8",
            description = "Chunk size in sectors (default 8 = 4 KiB, as lvcreate -s).")
    long chunk;

    @Option(names = "--store", paramLabel = "P|PO|N", defaultValue = "P", description = "Exception store (default P).")
    String store;

    @Option(
            names = "--preallocation",
            paramLabel = "off|falloc|full",
            defaultValue = "off",
            description = {
                "How a new or extended COW file gets its bytes (as qemu-img): off = sparse (default),",
                "falloc = reserved, full = zeroes written now, thick like an LV (concurrent first writes",
                "then run in parallel on ext4)."
            })
    String preallocation;

    @Option(
            names = "--cache",
            paramLabel = "MODE",
            converter = DaemonCommand.CacheModeConverter.class,
            description =
                    "When the snapshot's writes are acknowledged: none, writeback or directsync (default: the daemon's).")
    CacheMode cache;

    @Override
    public Integer call() throws IOException {
        DaemonSteps steps = new DaemonSteps(spec, options);
        try {
            TableLine originTable = new DeviceTables(steps).tableOf(origin);
            if (!originTable.targetType().equals("snapshot-origin")) {
                spec.commandLine()
                        .getErr()
                        .println("dmsnap: " + origin + " is not an origin (its target is " + originTable.targetType()
                                + ")");
                return ExitCodes.FAILED;
            }
            prepareCow();
            String table = "0 " + originTable.lengthSectors() + " snapshot "
                    + originTable.args().getFirst() + " " + cow.toRealPath() + " " + store + " " + chunk;
            steps.run("suspended origin " + origin, ControlRequest.of("suspend", origin));
            try {
                steps.run(
                        "created snapshot " + name + ": " + table,
                        new ControlRequest(
                                "create",
                                name,
                                table,
                                null,
                                null,
                                false,
                                false,
                                false,
                                false,
                                false,
                                cache == null ? null : cache.text()));
            } finally {
                steps.run("resumed origin " + origin, ControlRequest.of("resume", origin));
            }
            return ExitCodes.OK;
        } catch (StepFailed e) {
            return e.exitCode;
        }
    }

    /** A new COW file is created (sparse unless --preallocation says else); an existing file is extended, never shrunk. */
    private void prepareCow() throws IOException {
        CowPreallocation how = CowPreallocation.parse(preallocation);
        boolean exists = Files.exists(cow);
        if (!exists && cowSize == null) {
            throw new IllegalArgumentException(cow + " does not exist; give --cow-size to create it");
        }
        if (cowSize != null && (!exists || Files.isRegularFile(cow))) {
            long bytes = Sizes.parseBytes(cowSize);
            long had = exists ? Files.size(cow) : 0;
            if (had < bytes) {
                how.grow(cow, had, bytes, "preallocating " + cow.getFileName());
                spec.commandLine()
                        .getOut()
                        .println((exists ? "extended " : "created ") + cow + " to " + bytes + " bytes"
                                + (how == CowPreallocation.OFF ? "" : " (preallocation " + preallocation + ")"));
            }
        }
    }
}
