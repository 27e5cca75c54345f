package dmsnap.cli;

import dmsnap.control.ControlClient;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.daemon.DaemonConfig;
import dmsnap.ffm.Errno;
import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
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

        List<String> run(String description, ControlRequest request) throws StepFailed {
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
                throw new StepFailed(f.errno().equals("ENXIO") ? DaemonRequests.NO_DEVICE : ExitCodes.FAILED);
            }
            if (description != null) {
                spec.commandLine().getOut().println(description);
            }
            return ((ControlResponse.Success) response).lines();
        }

        private static String text(String errno) {
            try {
                return Errno.valueOf(errno).text();
            } catch (IllegalArgumentException e) {
                return errno;
            }
        }

        /** The single line of {@code name}'s live table, split into words. */
        String[] tableOf(String name) throws StepFailed {
            List<String> lines = run(null, new ControlRequest("table", name, null, null, null, false, false, false, false));
            if (lines.size() != 1) {
                spec.commandLine().getErr().println("dmsnap: " + name + " has " + lines.size()
                        + " table lines; expected one");
                throw new StepFailed(ExitCodes.FAILED);
            }
            return lines.getFirst().split(" ");
        }
    }

    private static ControlRequest create(String name, String table) {
        return new ControlRequest("create", name, table, null, null, false, false, false, false);
    }

    private static ControlRequest plain(String verb, String name) {
        return ControlRequest.of(verb, name);
    }

    /** Devices whose live table is a snapshot-origin over {@code originDevice}. */
    private static List<String> originsOf(Steps steps, String originDevice) throws StepFailed {
        List<String> names = new ArrayList<>();
        for (String line : steps.run(null, new ControlRequest("table", null, null, null, null, false, false, false, false))) {
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
            subcommands = {SnapshotCreate.class, SnapshotRefresh.class, SnapshotRemove.class})
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

        /** A new COW file is created sparse; an existing file is extended, never shrunk. */
        private void prepareCow() throws IOException {
            boolean exists = Files.exists(cow);
            if (!exists && cowSize == null) {
                throw new IllegalArgumentException(cow + " does not exist; give --cow-size to create it");
            }
            if (cowSize != null && (!exists || Files.isRegularFile(cow))) {
                long bytes = Sizes.parseBytes(cowSize);
                try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
                    if (f.length() < bytes) {
                        f.setLength(bytes);
                        spec.commandLine().getOut().println((exists ? "extended " : "created ") + cow + " to " + bytes
                                + " bytes");
                    }
                }
            }
        }
    }

    @Command(name = "refresh", description = "Reload a snapshot's identical table and resume it: the live store is handed over (lvchange --refresh).",
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
                String table = String.join(" ", steps.tableOf(name));
                steps.run("loaded " + name + ": " + table, new ControlRequest("load", name, table, null, null,
                        false, false, false, false));
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
}
