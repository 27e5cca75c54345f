package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.daemon.Daemon;
import dmsnap.daemon.DaemonConfig;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * An in-process daemon in a test's folder, driven by CLI verbs: origin {@code vol} over an 8 MiB
 * sparse base and its snapshot {@code snap} on a 4 MiB COW ({@link #cow}).
 */
final class VolSnapDaemon implements AutoCloseable {
    final Daemon daemon;
    final Path run;
    final Path cow;

    private VolSnapDaemon(Daemon daemon, Path run, Path cow) {
        this.daemon = daemon;
        this.run = run;
        this.cow = cow;
    }

    static VolSnapDaemon start(Path dir) throws Exception {
        Path run = dir.resolve("run");
        Path base = dir.resolve("base.img");
        sparse(base, 8 << 20);
        VolSnapDaemon rig =
                new VolSnapDaemon(Daemon.start(new DaemonConfig(run, null), "test"), run, dir.resolve("snap.cow"));
        CliRunner origin = rig.cli("origin", "create", "vol", base.toString());
        assertEquals(0, origin.exitCode(), origin.err());
        CliRunner snapshot =
                rig.cli("snapshot", "create", "vol", "snap", "--cow", rig.cow.toString(), "--cow-size", "4M");
        assertEquals(0, snapshot.exitCode(), snapshot.err());
        return rig;
    }

    /** Makes {@code file} a sparse file of {@code bytes}, as {@code truncate -s} does. */
    static void sparse(Path file, long bytes) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
    }

    /** The verb {@code args} against this daemon. */
    CliRunner cli(String... args) {
        String[] all = Arrays.copyOf(args, args.length + 2);
        all[args.length] = "--run-dir";
        all[args.length + 1] = run.toString();
        return CliRunner.run(all);
    }

    @Override
    public void close() {
        daemon.close();
    }
}
