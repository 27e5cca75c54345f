package dmsnap.cli;

import dmsnap.control.ControlRequest;
import dmsnap.target.CacheMode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** The dmsetup verbs, each sent to the daemon over its control socket. */
final class DeviceCommands {
    private DeviceCommands() {}

    /** --table LINE | --table-file FILE ('-' for stdin); neither: stdin. */
    static final class TableSource {
        @Option(
                names = "--table",
                paramLabel = "LINE",
                description = "The table, one line, e.g. \"0 16384 snapshot /img/base /img/cow P 8\".")
        String line;

        @Option(
                names = "--table-file",
                paramLabel = "FILE",
                description = "Read the table (one or more lines) from FILE, '-' for stdin.")
        String file;

        String read() throws IOException {
            if (line != null) {
                return line;
            }
            if (file == null || file.equals("-")) {
                InputStream in = System.in;
                return new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            return Files.readString(Path.of(file));
        }
    }

    /** A mode as the control request carries it; null for none given. */
    private static String text(CacheMode mode) {
        return mode == null ? null : mode.text();
    }

    private static ControlRequest request(String verb, String name) {
        return ControlRequest.of(verb, name);
    }

    /** A verb on one named device with no other arguments: resume, clear, info... */
    abstract static class OnDevice implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        abstract String verb();

        abstract String deviceName();

        @Override
        public Integer call() {
            return DaemonRequests.run(spec, options, request(verb(), deviceName()));
        }
    }

    @Command(
            name = "create",
            description = "Create a device; with a table also load and resume it (a failed load leaves nothing).",
            footer = {"", "Example:", "  dmsnap create origin --table \"0 16384 snapshot-origin /img/base\""})
    static final class Create implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @ArgGroup(exclusive = true)
        TableSource table;

        @Option(names = "--uuid", paramLabel = "UUID")
        String uuid;

        @Option(names = "--notable", description = "Create the device without a table.")
        boolean notable;

        @Option(
                names = {"-r", "--readonly"},
                description = "Make the table read-only: writes fail; NBD exports it read-only.")
        boolean readOnly;

        @Option(
                names = "--cache",
                paramLabel = "MODE",
                converter = DaemonCommand.CacheModeConverter.class,
                description = {
                    "When the table's snapshot writes are acknowledged: none, writeback or directsync (see",
                    "dmsnap daemon --cache). Default: the device's mode, for a new device the daemon's."
                })
        CacheMode cache;

        @Override
        public Integer call() throws IOException {
            String text = notable ? null : (table == null ? new TableSource() : table).read();
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest(
                            "create", name, text, uuid, null, false, false, false, notable, readOnly, text(cache)));
        }
    }

    @Command(
            name = "load",
            aliases = "reload",
            description = "Load a table into the device's inactive slot (resume makes it live).",
            footer = {"", "Example:", "  dmsnap load snap --table \"0 16384 snapshot /img/base /img/cow P 8\""})
    static final class Load implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @ArgGroup(exclusive = true)
        TableSource table;

        @Option(
                names = {"-r", "--readonly"},
                description = "Make the table read-only: writes fail; NBD exports it read-only.")
        boolean readOnly;

        @Option(
                names = "--cache",
                paramLabel = "MODE",
                converter = DaemonCommand.CacheModeConverter.class,
                description = {
                    "When the table's snapshot writes are acknowledged: none, writeback or directsync (see",
                    "dmsnap daemon --cache). Default: the device's mode, for a new device the daemon's."
                })
        CacheMode cache;

        @Override
        public Integer call() throws IOException {
            String text = (table == null ? new TableSource() : table).read();
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest(
                            "load", name, text, null, null, false, false, false, false, readOnly, text(cache)));
        }
    }

    @Command(
            name = "suspend",
            description = "Suspend a device: I/O drains and new I/O waits until resume.",
            footer = {"", "Example:", "  dmsnap suspend origin"})
    static final class Suspend implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Option(
                names = "--noflush",
                description = "Do not flush (the same for dmsnap's targets, which never requeue I/O).")
        boolean noflush;

        @Override
        public Integer call() {
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest("suspend", name, null, null, null, false, noflush, false, false, false));
        }
    }

    @Command(
            name = "resume",
            description = "Resume a device, making a loaded table live first.",
            footer = {"", "Example:", "  dmsnap resume origin"})
    static final class Resume extends OnDevice {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Override
        String verb() {
            return "resume";
        }

        @Override
        String deviceName() {
            return name;
        }
    }

    @Command(
            name = "clear",
            description = "Destroy the device's inactive table.",
            footer = {"", "Example:", "  dmsnap clear snap"})
    static final class Clear extends OnDevice {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Override
        String verb() {
            return "clear";
        }

        @Override
        String deviceName() {
            return name;
        }
    }

    @Command(
            name = "remove",
            description = "Remove a device (refused while it is open, unless --force).",
            footer = {"", "Example:", "  dmsnap remove snap"})
    static final class Remove implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Option(names = "--force", description = "Remove even while open.")
        boolean force;

        @Override
        public Integer call() {
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest("remove", name, null, null, null, false, false, force, false, false));
        }
    }

    @Command(
            name = "rename",
            description = "Rename a device.",
            footer = {"", "Example:", "  dmsnap rename snap snap-old"})
    static final class Rename implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Parameters(index = "1", paramLabel = "NEW_NAME")
        String newName;

        @Override
        public Integer call() {
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest("rename", name, null, null, newName, false, false, false, false, false));
        }
    }

    @Command(
            name = "status",
            description = "Print target status lines, as dmsetup status.",
            footer = {"", "Example:", "  dmsnap status snap", "  dmsnap status --inactive snap"})
    static final class Status implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME")
        String name;

        @Option(names = "--inactive", description = "The inactive table's.")
        boolean inactive;

        @Override
        public Integer call() {
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest("status", name, null, null, null, inactive, false, false, false, false));
        }
    }

    @Command(
            name = "table",
            description = "Print table lines (devices as major:minor, paths or dm:NAME), as dmsetup table.",
            footer = {"", "Example:", "  dmsnap table snap"})
    static final class TableCmd implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME")
        String name;

        @Option(names = "--inactive", description = "The inactive table's.")
        boolean inactive;

        @Override
        public Integer call() {
            return DaemonRequests.run(
                    spec,
                    options,
                    new ControlRequest("table", name, null, null, null, inactive, false, false, false, false));
        }
    }

    @Command(
            name = "info",
            description = "Print device information, as dmsetup info.",
            footer = {"", "Example:", "  dmsnap info snap"})
    static final class Info extends OnDevice {
        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME")
        String name;

        @Override
        String verb() {
            return "info";
        }

        @Override
        String deviceName() {
            return name;
        }
    }

    @Command(
            name = "ls",
            description = "List devices, as dmsetup ls.",
            footer = {"", "Example:", "  dmsnap ls"})
    static final class Ls implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Override
        public Integer call() {
            return DaemonRequests.run(spec, options, request("ls", null));
        }
    }

    @Command(
            name = "targets",
            description = "List target types and versions, as dmsetup targets.",
            footer = {"", "Example:", "  dmsnap targets"})
    static final class Targets implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        ClientOptions options;

        @Override
        public Integer call() {
            return DaemonRequests.run(spec, options, request("targets", null));
        }
    }
}
