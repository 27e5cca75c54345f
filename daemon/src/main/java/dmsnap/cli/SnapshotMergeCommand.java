package dmsnap.cli;

import com.fasterxml.jackson.annotation.JsonUnwrapped;
import dmsnap.control.ControlRequest;
import dmsnap.control.ControlResponse;
import dmsnap.control.Json;
import dmsnap.control.ResponseData.MergeRow;
import dmsnap.control.ResponseData.MergeStarted;
import dmsnap.control.ResponseData.MergeStatus;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dmsnap snapshot merge} (lvconvert --merge): starts the daemon's merge, then follows it
 * (progress bar or JSON lines) unless {@code --background}; {@code --status} lists the merges.
 */
@Command(
        name = "merge",
        description = {
            "Merge a snapshot back into its origin, online (lvconvert --merge): the",
            "origin device gets a snapshot-merge table and takes over the snapshot's",
            "exception store, the snapshot device is removed, and the origin reads the",
            "snapshot's content at once while the chunks are copied back. When the merge",
            "is done the origin becomes snapshot-origin (other snapshots remain) or linear.",
            "If the origin is open (an NBD client, a stacked device), the merge starts once",
            "nothing holds it open, as LVM defers it to the next activation. The daemon",
            "sees the merge through, also after a restart with --state-dir; interrupting",
            "this command does not stop it. Without --background it waits: a progress bar",
            "on a terminal, one JSON line per update with --json."
        },
        footer = {
            "",
            "Examples:",
            "  dmsnap snapshot merge vol-snap",
            "  dmsnap snapshot merge vol-snap --background",
            "  dmsnap snapshot merge --status",
            "  dmsnap snapshot merge --status vol --json"
        })
final class SnapshotMergeCommand implements Callable<Integer> {
    private static final long POLL_MILLIS = 200;

    /** A --json progress line: the daemon's merge row, then this command's rate and ETA. */
    private record ProgressJson(@JsonUnwrapped MergeRow row, double mibPerSecond, long etaSeconds) {}

    @Spec
    CommandSpec spec;

    @Mixin
    ClientOptions options;

    @Parameters(
            index = "0",
            arity = "0..1",
            paramLabel = "SNAP",
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
        DaemonSteps steps = new DaemonSteps(spec, options);
        ControlResponse.Success started;
        try {
            started = steps.success(ControlRequest.of("merge", name));
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
    private int follow(DaemonSteps steps, String origin) throws InterruptedException {
        PrintWriter out = spec.commandLine().getOut();
        long startNanos = System.nanoTime();
        long startBytes = 0; // this command started the merge
        ProgressLine bar = null;
        String lastJson = null;
        try {
            while (true) {
                ControlResponse.Success s;
                try {
                    s = steps.success(ControlRequest.of("merge-status", origin));
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
                        out.println(Json.write(new ProgressJson(
                                row,
                                Math.round(rate / 1048576.0 * 10) / 10.0,
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
                            out.println(
                                    "merged " + name + " into " + origin + "; " + origin + " is now: " + row.table());
                        }
                        return ExitCodes.OK;
                    }
                    case "failed", "invalid" -> {
                        if (bar != null) {
                            bar.close();
                            bar = null;
                        }
                        spec.commandLine()
                                .getErr()
                                .println("dmsnap: merge of " + name + " into " + origin + ": "
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
