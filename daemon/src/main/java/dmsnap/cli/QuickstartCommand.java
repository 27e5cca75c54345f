package dmsnap.cli;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import dmsnap.device.DeviceManager;
import dmsnap.device.MappedDevice;
import dmsnap.table.TableParser;
import dmsnap.target.IoRequest;
import dmsnap.target.StatusType;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import sun.misc.Signal;

/**
 * {@code dmsnap quickstart [DIR]}: the guided first run, in seconds. In a fresh folder it makes
 * a sparse base image with a recognisable first sector, starts an embedded daemon, creates an
 * origin and a snapshot the LVM way, writes to the origin, shows that the snapshot still reads
 * the old data, prints status, refreshes the snapshot live (the handover), and cleans up — or,
 * with {@code --serve}, stays up for the CLI until Ctrl-C.
 */
@Command(
        name = "quickstart",
        description = {
            "Create a base image, an origin and a snapshot in a fresh folder and show them working:",
            "origin writes leave the snapshot's data alone, status, and a live refresh (handover)."
        },
        footer = {"", "Example:", "  ./dmsnap quickstart", "  ./dmsnap quickstart /tmp/qs --serve"})
final class QuickstartCommand implements Callable<Integer> {
    private static final long BASE_BYTES = 64L << 20;
    private static final long COW_BYTES = 16L << 20;

    @Spec
    CommandSpec spec;

    @Parameters(
            index = "0",
            arity = "0..1",
            paramLabel = "DIR",
            defaultValue = "dmsnap-quickstart",
            description = "A folder that does not exist yet, or is empty (default ./dmsnap-quickstart).")
    Path dir;

    @Option(names = "--serve", description = "Keep the daemon running (Ctrl-C stops it) instead of cleaning up.")
    boolean serve;

    @Override
    public Integer call() throws Exception {
        // The guided run prints its own steps; the embedded daemon's log shows only problems.
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        }
        PrintWriter out = spec.commandLine().getOut();
        Path folder = dir.toAbsolutePath().normalize();
        if (Files.exists(folder)
                && (!Files.isDirectory(folder) || Files.list(folder).findAny().isPresent())) {
            throw new IllegalArgumentException(folder + " exists and is not empty: give a new folder");
        }
        Files.createDirectories(folder);
        Path base = folder.resolve("base.img");
        Path cow = folder.resolve("snap.cow");
        Path run = folder.resolve("run");
        writeBase(base);
        try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
            f.setLength(COW_BYTES);
        }
        out.println("dmsnap quickstart in " + folder);
        out.println("  base image  " + base + " (64 MiB, sparse; sector 0 says \"dmsnap quickstart: original data\")");
        out.println("  COW         " + cow + " (16 MiB)");
        Daemon daemon = Daemon.start(new DaemonConfig(run, null), VersionProvider.version());
        boolean keep = false;
        try (Arena arena = Arena.ofConfined()) {
            out.println("  daemon      embedded, run directory " + run);
            DeviceManager dm = daemon.devices();
            long sectors = BASE_BYTES >>> 9;
            step(out, "dmsnap origin create origin " + base);
            dm.create("origin", null, TableParser.parse("0 " + sectors + " snapshot-origin " + base));
            step(out, "dmsnap snapshot create origin snap --cow " + cow + "   (origin suspended while it is added)");
            dm.get("origin").suspend();
            dm.create("snap", null, TableParser.parse("0 " + sectors + " snapshot " + base + " " + cow + " P 8"));
            dm.get("origin").resume();
            MemorySegment block = arena.allocate(4096, 4096);
            block.setString(
                    0, "dmsnap quickstart: written through the origin after the snapshot", StandardCharsets.US_ASCII);
            dm.get("origin").submit(IoRequest.write(0, block, true));
            out.println("wrote a new first sector through the origin");
            out.println("  origin reads: " + firstSector(dm.get("origin"), arena));
            out.println(
                    "  snap reads:   " + firstSector(dm.get("snap"), arena) + "   <- the snapshot keeps the old data");
            status(out, dm);
            step(out, "dmsnap snapshot refresh snap   (reload + resume: the exception store is handed over live)");
            dm.load("snap", TableParser.parse("0 " + sectors + " snapshot " + base + " " + cow + " P 8"));
            dm.get("snap").resume();
            out.println("  snap reads:   " + firstSector(dm.get("snap"), arena) + "   <- same data, nothing re-read");
            status(out, dm);
            String snapUri = daemon.nbd().unixUri("snap");
            out.println();
            out.println("NBD exports, served on " + daemon.nbd().socketPath()
                    + (serve ? ":" : " (with --serve they stay up):"));
            out.println("  origin  " + daemon.nbd().unixUri("origin"));
            out.println("  snap    " + snapUri);
            out.println();
            out.println("Try next (keep it running with: ./dmsnap quickstart DIR --serve):");
            out.println("  nbdinfo '" + snapUri + "'");
            out.println("  qemu-img convert -f raw -O qcow2 '" + snapUri + "' " + folder.resolve("snap.qcow2"));
            out.println("  nbdcopy '" + snapUri + "' - | head -c 64");
            out.println(
                    "  nbdfuse " + folder.resolve("snap.img") + " '" + snapUri + "' &   # a file to losetup and mount");
            out.println("  ./dmsnap status --run-dir " + run);
            out.println("  ./dmsnap cow dump " + cow);
            out.println(
                    "  ./dmsnap cow read --origin " + base + " --cow " + cow + " --out " + folder.resolve("snap.raw"));
            if (serve) {
                keep = true;
                out.println();
                out.println("serving until Ctrl-C (run directory " + run + ")");
                out.flush();
                for (String signal : new String[] {"TERM", "INT"}) {
                    Signal.handle(new Signal(signal), s -> Thread.ofPlatform().start(daemon::stop));
                }
                daemon.awaitStop();
            }
        } finally {
            daemon.stop();
            if (!keep) {
                deleteTree(folder);
                out.println("cleaned up " + folder);
            }
        }
        return ExitCodes.OK;
    }

    private static void step(PrintWriter out, String command) {
        out.println("$ " + command);
    }

    private static void status(PrintWriter out, DeviceManager dm) throws Exception {
        step(out, "dmsnap status");
        for (MappedDevice d : dm.list()) {
            for (String line : d.statusLines(StatusType.INFO, false)) {
                out.println("  " + d.name() + ": " + line);
            }
        }
    }

    private static String firstSector(MappedDevice device, Arena arena) throws Exception {
        MemorySegment sector = arena.allocate(4096, 4096);
        device.submit(IoRequest.read(0, sector));
        return "\"" + sector.getString(0, StandardCharsets.US_ASCII) + "\"";
    }

    private static void writeBase(Path base) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(BASE_BYTES);
            f.seek(0);
            f.write("dmsnap quickstart: original data\0".getBytes(StandardCharsets.US_ASCII));
        }
    }

    private static void deleteTree(Path folder) throws IOException {
        try (var walk = Files.walk(folder)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
