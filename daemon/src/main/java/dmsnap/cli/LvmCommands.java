package dmsnap.cli;

import com.fasterxml.jackson.annotation.JsonUnwrapped;
import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.control.ResponseData.MergeRow;
import dmsnap.control.ResponseData.MergeStarted;
import dmsnap.control.ResponseData.MergeStatus;
import dmsnap.daemon.DaemonConfig;
import dmsnap.ffm.Errno;
import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * LVM-style conveniences that run the right dmsetup sequences: an origin over a base device, a
 * snapshot added while its origin is suspended (so the origin's split boundary is recomputed at
 * its resume), a refresh through the handover path (lvchange --refresh), a removal with the
 * origin suspended around it. Each step is printed.
 */
final class LvmCommands {
    private LvmCommands() {
    }

    /** A failed step: the daemon's answer, already printed. */
    private static final class StepFailed extends Exception {
        private static final long serialVersionUID = 1L;
        final int exitCode;

        StepFailed(int exitCode) {
            super(null, null, false, false);
            this.exitCode = exitCode;
        }
    }

    /** Runs steps against the daemon, printing each. */
    private static final class Steps {
        final CommandSpec spec;
        final ClientOptions options;
        final ControlClient client;

        Steps(CommandSpec spec, ClientOptions options) {
            this.spec = spec;
            this.options = options;
            this.client = new ControlClient(new DaemonConfig(options.runDir(), null).controlSocket());
        }

        /** Sends {@code request}; prints {@code description} when it succeeded; a failure is printed and thrown. */
        List<String> run(String description, ControlRequest request) throws StepFailed {
            List<String> lines = success(request, description).lines();
            if (description != null) {
                spec.commandLine().getOut().println(description);
            }
            return lines;
        }

        private static String text(String errno) {
            try {
                return Errno.valueOf(errno).text();
            } catch (IllegalArgumentException e) {
                return errno;
            }
        }

        /** Sends {@code request}; a failure is printed (as by {@link #run}) and thrown. */
        ControlResponse.Success success(ControlRequest request, String description) throws StepFailed {
            ControlResponse response;
            try {
                response = client.send(request);
            } catch (IOException e) {
                spec.commandLine().getErr().println("dmsnap: cannot reach the daemon at " + client.socketPath() + ": "
                        + e.getMessage());
                throw new StepFailed(DaemonRequests.NO_DAEMON);
            }
            if (response instanceof ControlResponse.Failure f) {
                PrintWriter err = spec.commandLine().getErr();
                err.println("dmsnap: " + description + ": " + f.operation() + " failed: " + text(f.errno()));
                if (!f.reason().isEmpty()) {
                    err.println("dmsnap: " + f.reason());
                }
                throw new StepFailed(switch (f.errno()) {
                    case "ENXIO", "ENODEV" -> DaemonRequests.NO_DEVICE;
                    case "EBUSY" -> DaemonRequests.BUSY;
                    default -> ExitCodes.FAILED;
                });
            }
            return (ControlResponse.Success) response;
        }

        /** The data of a success as a {@code type}; an answer without it is printed and thrown. */
        <T> T data(ControlResponse.Success s, Class<T> type) throws StepFailed {
            try {
                T data = s.data() == null ? null : Json.read(s.data(), type);
                if (data != null) {
                    return data;
                }
            } catch (IOException e) {
                // Told below: an answer this command cannot read.
            }
            spec.commandLine().getErr().println("dmsnap: the daemon at " + client.socketPath()
                    + " gave an answer without the expected " + type.getSimpleName() + " data (a daemon of another version?)");
            throw new StepFailed(ExitCodes.FAILED);
        }

        /** The single line of {@code name}'s live table, split into words. */
        String[] tableOf(String name) throws StepFailed {
            return tableOf(name, false);
        }

        /** The single line of {@code name}'s live (or inactive) table, split into words. */
        String[] tableOf(String name, boolean inactive) throws StepFailed {
            List<String> lines = run(null, new ControlRequest("table", name, null, null, null, inactive, false, false,
                    false, false));
            if (lines.size() != 1) {
                spec.commandLine().getErr().println("dmsnap: " + name + " has " + lines.size()
                        + (inactive ? " inactive" : "") + " table lines; expected one");
                throw new StepFailed(ExitCodes.FAILED);
            }
            return lines.getFirst().split(" ");
        }
    }

    private static ControlRequest create(String name, String table) {
        return new ControlRequest("create", name, table, null, null, false, false, false, false, false);
    }

    private static ControlRequest plain(String verb, String name) {
        return ControlRequest.of(verb, name);
    }

    /** Devices whose live table is a snapshot-origin over {@code originDevice}. */
    private static List<String> originsOf(Steps steps, String originDevice) throws StepFailed {
        List<String> names = new ArrayList<>();
        for (String line : steps.run(null, new ControlRequest("table", null, null, null, null, false, false, false, false, false))) {
            String[] w = line.split(" ");
            if (w.length >= 5 && w[3].equals("snapshot-origin") && w[4].equals(originDevice)) {
                names.add(w[0].substring(0, w[0].length() - 1));
            }
        }
        return names;
    }

    @Command(name = "origin", description = "Origin devices.", subcommands = OriginCreate.class)
    static final class Origin implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            spec.commandLine().usage(spec.commandLine().getErr());
            return ExitCodes.USAGE;
        }
    }

    @Command(name = "create", description = "Create an origin device (snapshot-origin) over a base file or block device.",
            footer = {"", "Example:", "  dmsnap origin create vol /img/base"})
    static final class OriginCreate implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        ClientOptions options;
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Parameters(index = "1", paramLabel = "DEVICE")
        Path device;

        @Override
        public Integer call() throws IOException {
            long sectors = FileDevice.probeSizeSectors(device); // the daemon may already use it (another table)
            try {
                new Steps(spec, options).run("created origin " + name + " over " + device + " (" + sectors + " sectors)",
                        create(name, "0 " + sectors + " snapshot-origin " + device.toRealPath()));
                return ExitCodes.OK;
            } catch (StepFailed e) {
                return e.exitCode;
            }
        }
    }

    @Command(name = "snapshot", description = "Snapshots the LVM way.",
            subcommands = {SnapshotCreate.class, SnapshotRefresh.class, SnapshotMerge.class, SnapshotRemove.class})
    static final class Snapshot implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            spec.commandLine().usage(spec.commandLine().getErr());
            return ExitCodes.USAGE;
        }
    }

    @Command(name = "create", description = {"Create a snapshot of an origin device: creates or extends the COW file,",
            "suspends the origin while the snapshot is added, resumes it (so it splits writes at the new chunk size)."},
            footer = {"", "Example:", "  dmsnap snapshot create vol vol-snap --cow /img/vol-snap.cow --cow-size 1G --chunk-size 8"})
    static final class SnapshotCreate implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        ClientOptions options;
        @Parameters(index = "0", paramLabel = "ORIGIN", description = "The origin device (snapshot-origin).")
        String origin;
        @Parameters(index = "1", paramLabel = "SNAP")
        String name;
        @Option(names = "--cow", required = true, paramLabel = "PATH", description = "COW file (created if missing) or block device.")
        Path cow;
        @Option(names = "--cow-size", paramLabel = "SIZE", description = "Create or extend the COW file to SIZE (e.g. 1G).")
        String cowSize;
        @Option(names = "--chunk-size", paramLabel = "SECTORS", defaultValue = "8",
                description = "Chunk size in sectors (default 8 = 4 KiB, as lvcreate -s).")
        long chunk;
        @Option(names = "--store", paramLabel = "P|PO|N", defaultValue = "P", description = "Exception store (default P).")
        String store;
        @Option(names = "--preallocation", paramLabel = "off|falloc|full", defaultValue = "off",
                description = {"How a new or extended COW file gets its bytes (as qemu-img): off = sparse (default),",
                        "falloc = reserved, full = zeroes written now, thick like an LV (concurrent first writes",
                        "then run in parallel on ext4)."})
        String preallocation;

        @Override
        public Integer call() throws IOException {
            Steps steps = new Steps(spec, options);
            try {
                String[] originTable = steps.tableOf(origin);
                if (!originTable[2].equals("snapshot-origin")) {
                    spec.commandLine().getErr().println("dmsnap: " + origin + " is not an origin (its target is "
                            + originTable[2] + ")");
                    return ExitCodes.FAILED;
                }
                prepareCow();
                String table = "0 " + originTable[1] + " snapshot " + originTable[3] + " " + cow.toRealPath() + " "
                        + store + " " + chunk;
                steps.run("suspended origin " + origin, plain("suspend", origin));
                try {
                    steps.run("created snapshot " + name + ": " + table, create(name, table));
                } finally {
                    steps.run("resumed origin " + origin, plain("resume", origin));
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
                    spec.commandLine().getOut().println((exists ? "extended " : "created ") + cow + " to " + bytes
                            + " bytes" + (how == CowPreallocation.OFF ? "" : " (preallocation " + preallocation + ")"));
                }
            }
        }
    }

    @Command(name = "refresh", description = {"Reload a snapshot's identical table and resume it: the live store is handed over",
            "(lvchange --refresh). When the reloaded table would not take the store over (its COW path now names",
            "another file), the reload is cleared and the snapshot left as it was."},
            footer = {"", "Example:", "  dmsnap snapshot refresh vol-snap"})
    static final class SnapshotRefresh implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        ClientOptions options;
        @Parameters(index = "0", paramLabel = "SNAP")
        String name;

        @Override
        public Integer call() {
            Steps steps = new Steps(spec, options);
            try {
                String[] live = steps.tableOf(name);
                String table = String.join(" ", live);
                steps.run("loaded " + name + ": " + table, new ControlRequest("load", name, table, null, null,
                        false, false, false, false, false));
                if (!live[2].equals("snapshot") && !live[2].equals("snapshot-merge")) {
                    steps.run("resumed " + name, plain("resume", name));
                    return ExitCodes.OK;
                }
                // Until its resume a handover destination has chunk size 0 (spec 6.2): the one sign
                // of whether the new table takes the live store over or has read the COW afresh.
                if (!steps.tableOf(name, true)[6].equals("0")) {
                    steps.run(null, plain("clear", name));
                    // Not a destination: no live instance on that origin has that COW any more.
                    spec.commandLine().getErr().println("dmsnap: " + name + ": the reloaded table did not take over the"
                            + " live exception store: its origin " + live[3] + " or COW " + live[4] + " now names"
                            + " another file than the live table's (was one replaced?); cleared the inactive table, "
                            + name + " is unchanged");
                    return ExitCodes.FAILED;
                }
                steps.run("resumed " + name + " (exception store handed over)", plain("resume", name));
                return ExitCodes.OK;
            } catch (StepFailed e) {
                return e.exitCode;
            }
        }
    }

    @Command(name = "remove", description = "Remove a snapshot with its origin suspended around it.",
            footer = {"", "Example:", "  dmsnap snapshot remove vol-snap"})
    static final class SnapshotRemove implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        ClientOptions options;
        @Parameters(index = "0", paramLabel = "SNAP")
        String name;

        @Override
        public Integer call() {
            Steps steps = new Steps(spec, options);
            try {
                String[] table = steps.tableOf(name);
                if (!table[2].equals("snapshot")) {
                    spec.commandLine().getErr().println("dmsnap: " + name + " is not a snapshot");
                    return ExitCodes.FAILED;
                }
                List<String> origins = originsOf(steps, table[3]);
                for (String o : origins) {
                    steps.run("suspended origin " + o, plain("suspend", o));
                }
                try {
                    steps.run("removed snapshot " + name, plain("remove", name));
                } finally {
                    for (String o : origins) {
                        steps.run("resumed origin " + o, plain("resume", o));
                    }
                }
                return ExitCodes.OK;
            } catch (StepFailed e) {
                return e.exitCode;
            }
        }
    }

    @Command(name = "merge",
            description = {"Merge a snapshot back into its origin, online (lvconvert --merge): the",
                "origin device gets a snapshot-merge table and takes over the snapshot's",
                "exception store, the snapshot device is removed, and the origin reads the",
                "snapshot's content at once while the chunks are copied back. When the merge",
                "is done the origin becomes snapshot-origin (other snapshots remain) or linear.",
                "If the origin is open (an NBD client, a stacked device), the merge starts once",
                "nothing holds it open, as LVM defers it to the next activation. The daemon",
                "sees the merge through, also after a restart with --state-dir; interrupting",
                "this command does not stop it. Without --background it waits: a progress bar",
                "on a terminal, one JSON line per update with --json."},
            footer = {"", "Examples:", "  dmsnap snapshot merge vol-snap", "  dmsnap snapshot merge vol-snap --background",
                "  dmsnap snapshot merge --status", "  dmsnap snapshot merge --status vol --json"})
    static final class SnapshotMerge implements Callable<Integer> {
        private static final long POLL_MILLIS = 200;

        /** A --json progress line: the daemon's merge row, then this command's rate and ETA. */
        private record ProgressJson(@JsonUnwrapped MergeRow row, double mibPerSecond, long etaSeconds) {
        }

        @Spec
        CommandSpec spec;
        @Mixin
        ClientOptions options;
        @Parameters(index = "0", arity = "0..1", paramLabel = "SNAP",
                description = "The snapshot device to merge (with --status: a snapshot or origin device, optional).")
        String name;
        @Option(names = "--background", description = "Start the merge and return; follow it with --status.")
        boolean background;
        @Option(names = "--status", description = "Show the merges the daemon knows of, with their progress.")
        boolean status;

        @Override
        public Integer call() throws InterruptedException {
            if (status) {
                return DaemonRequests.run(spec, options, ControlRequest.of("merge-status", name));
            }
            if (name == null) {
                spec.commandLine().getErr().println("dmsnap: snapshot merge needs SNAP (or --status)");
                return ExitCodes.USAGE;
            }
            PrintWriter out = spec.commandLine().getOut();
            Steps steps = new Steps(spec, options);
            ControlResponse.Success started;
            try {
                started = steps.success(ControlRequest.of("merge", name), "merge " + name);
            } catch (StepFailed e) {
                return e.exitCode;
            }
            MergeStarted merge;
            try {
                merge = steps.data(started, MergeStarted.class);
            } catch (StepFailed e) {
                return e.exitCode;
            }
            String origin = merge.origin();
            String state = merge.state();
            if (options.json) {
                out.println(Json.write(started.data()));
            } else {
                started.lines().forEach(out::println);
            }
            if ("waiting".equals(state)) {
                return ExitCodes.OK;
            }
            if (background) {
                if (!options.json) {
                    out.println("merging in the background; follow it with: dmsnap snapshot merge --status " + origin);
                }
                return ExitCodes.OK;
            }
            return follow(steps, origin);
        }

        /** Polls the merge until the daemon has finished it. */
        private int follow(Steps steps, String origin) throws InterruptedException {
            PrintWriter out = spec.commandLine().getOut();
            long startNanos = System.nanoTime();
            long startBytes = 0; // this command started the merge
            ProgressLine bar = null;
            String lastJson = null;
            try {
                while (true) {
                    ControlResponse.Success s;
                    try {
                        s = steps.success(ControlRequest.of("merge-status", origin), "merge status of " + origin);
                    } catch (StepFailed e) {
                        return e.exitCode;
                    }
                    MergeStatus merges;
                    try {
                        merges = steps.data(s, MergeStatus.class);
                    } catch (StepFailed e) {
                        return e.exitCode;
                    }
                    if (merges.merges().isEmpty()) {
                        Thread.sleep(POLL_MILLIS); // a named merge that is gone is ENXIO; this is not expected: ask again
                        continue;
                    }
                    MergeRow row = merges.merges().getFirst();
                    String state = row.state() == null ? "" : row.state();
                    long done = row.mergedBytes() == null ? 0 : row.mergedBytes();
                    long total = row.totalBytes() == null ? 0 : row.totalBytes();
                    if (options.json) {
                        double seconds = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
                        double rate = (done - startBytes) / seconds;
                        String key = state + row.percent();
                        if (!key.equals(lastJson)) {
                            out.println(Json.write(new ProgressJson(row, Math.round(rate / 1048576.0 * 10) / 10.0,
                                    rate > 0 ? Math.round((total - done) / rate) : 0)));
                            out.flush();
                            lastJson = key;
                        }
                    } else {
                        if (bar == null) {
                            bar = ProgressLine.onTerminal("merge " + name, total);
                        }
                        if (bar != null) {
                            bar.update(done);
                        }
                    }
                    switch (state) {
                        case "finished" -> {
                            if (bar != null) {
                                bar.close();
                                bar = null;
                            }
                            if (!options.json) {
                                out.println("merged " + name + " into " + origin + "; " + origin + " is now: "
                                        + row.table());
                            }
                            return ExitCodes.OK;
                        }
                        case "failed", "invalid" -> {
                            if (bar != null) {
                                bar.close();
                                bar = null;
                            }
                            spec.commandLine().getErr().println("dmsnap: merge of " + name + " into " + origin + ": "
                                    + s.lines().getFirst().substring(origin.length() + 2));
                            return ExitCodes.FAILED;
                        }
                        default -> Thread.sleep(POLL_MILLIS);
                    }
                }
            } finally {
                if (bar != null) {
                    bar.close();
                }
            }
        }
    }
}
