package dmsnap.cli;

import dmsnap.nbd.NbdLoad;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.Writer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The client side of the launcher's AOT training (JDK 25's {@code -XX:AOTCacheOutput}): what a
 * user's first minutes run against a daemon the launcher started for it ({@code dmsnap daemon},
 * which records the cache). CLI verbs make an origin over a sparse base and a snapshot on a
 * sparse COW, then NBD clients keep the daemon's I/O path busy on three connections (the
 * snapshot with structured replies and several requests in flight, the snapshot and the origin
 * with simple replies one at a time: the shapes of libnbd, qemu, the kernel and fio), then more
 * verbs. The launcher stops the daemon with SIGTERM, its real stop path. So a new daemon serves
 * its first requests with its classes linked and its methods' profiles at hand (JEP 483, 515),
 * and a verb, whose classes the daemon's JVM loads too, starts with them linked. The clients run
 * in a JVM of their own: in the daemon's they took its CPU and mixed their profiles into its.
 *
 * <p>{@code java ... dmsnap.cli.AotTraining DIR RUN_DIR}: DIR (empty) gets the images; RUN_DIR
 * is the daemon's. Exit status 0 only when every step and every request succeeded: a training
 * that went wrong must leave no cache.
 */
public final class AotTraining {
    /**
     * The I/O phase, per connection: enough requests for the daemon's request path to be compiled
     * by C2 (its thresholds count invocations), within a bounded time on a slow or busy machine.
     */
    static final long IO_REQUESTS = 8_000;

    static final Duration IO_TIME = Duration.ofSeconds(4);
    /** How long the daemon may take to answer at all. */
    static final Duration DAEMON_START = Duration.ofSeconds(60);

    private static final long BASE_BYTES = 64L << 20;
    private static final PrintWriter SINK = new PrintWriter(Writer.nullWriter());

    private AotTraining() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: AotTraining DIR RUN_DIR (DIR empty, the daemon's run directory)");
            System.exit(ExitCodes.USAGE);
        }
        long started = System.nanoTime();
        train(Path.of(args[0]), Path.of(args[1]), IO_REQUESTS, IO_TIME);
        System.out.printf("AOT training: %d ms in all%n", (System.nanoTime() - started) / 1_000_000);
        System.exit(ExitCodes.OK);
    }

    /**
     * Runs the client side of the training, each NBD connection until it had {@code requests}
     * answered or {@code ioTime} passed; returns the number of NBD requests answered.
     */
    static long train(Path dir, Path run, long requests, Duration ioTime) throws Exception {
        Path base = dir.resolve("base.img");
        Path cow = dir.resolve("snap.cow");
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(BASE_BYTES);
        }
        cli("--version");
        String r = run.toString();
        awaitDaemon(r);
        cli("origin", "create", "vol", base.toString(), "--run-dir", r);
        // As large as the origin: every chunk may become an exception, so no write fails.
        cli(
                "snapshot",
                "create",
                "vol",
                "snap",
                "--cow",
                cow.toString(),
                "--cow-size",
                (BASE_BYTES * 5 / 4 >> 20) + "M",
                "--run-dir",
                r);
        long ioStarted = System.nanoTime();
        long answered = io(run.resolve("nbd.sock"), requests, ioTime);
        System.out.printf(
                "AOT training: %d NBD requests in %d ms%n", answered, (System.nanoTime() - ioStarted) / 1_000_000);
        cli("ls", "--run-dir", r);
        cli("status", "--run-dir", r);
        cli("info", "--json", "--run-dir", r);
        return answered;
    }

    /**
     * Waits until {@code dmsnap ls} reaches the daemon. The calls before it does take the path
     * of a call that finds no daemon, which is part of what the CLI's cache should hold.
     */
    private static void awaitDaemon(String run) throws Exception {
        long deadline = System.nanoTime() + DAEMON_START.toNanos();
        while (Main.run(new String[] {"ls", "--run-dir", run}, SINK, SINK) != ExitCodes.OK) {
            if (System.nanoTime() - deadline > 0) {
                throw new IOException("no daemon answered on " + run + " within " + DAEMON_START.toSeconds() + " s");
            }
            Thread.sleep(20);
        }
    }

    /** One CLI call in this JVM, its output dropped; anything but success ends the training. */
    private static void cli(String... args) {
        int status = Main.run(args, SINK, SINK);
        if (status != ExitCodes.OK) {
            throw new IllegalStateException("dmsnap " + String.join(" ", args) + ": exit status " + status);
        }
    }

    private static long io(Path socket, long requests, Duration ioTime) throws Exception {
        long deadline = System.nanoTime() + ioTime.toNanos();
        List<NbdLoad.Mix> mixes = List.of(
                new NbdLoad.Mix(true, 8, 1), // libnbd, qemu: structured replies, requests in flight
                new NbdLoad.Mix(false, 1, 2), // the kernel's client, fio at queue depth 1
                new NbdLoad.Mix(false, 1, 3));
        String[] exports = {"snap", "snap", "vol"};
        ExecutorService clients = Executors.newFixedThreadPool(mixes.size());
        try {
            List<Future<Long>> done = new ArrayList<>();
            for (int i = 0; i < mixes.size(); i++) {
                NbdLoad.Mix mix = mixes.get(i);
                String export = exports[i];
                done.add(clients.submit(() -> NbdLoad.run(socket, export, mix, requests, deadline)));
            }
            long answered = 0;
            for (Future<Long> f : done) {
                try {
                    answered += f.get();
                } catch (ExecutionException e) {
                    throw new IOException("NBD training: " + e.getCause().getMessage(), e.getCause());
                }
            }
            return answered;
        } finally {
            clients.shutdownNow();
        }
    }
}
