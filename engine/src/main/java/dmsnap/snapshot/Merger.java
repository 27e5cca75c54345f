package dmsnap.snapshot;

import dmsnap.store.ChunkSize;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.MergeRun;
import dmsnap.store.copy.ChunkCopier;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.copy.CopyResult;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The merge loop of one snapshot-merge instance ({@code snapshot_merge_next_chunks} and
 * {@code merge_callback} in dm-snap.c, spec 9.2), on a platform thread of its own while it runs.
 * One step: take the last run of consecutive entries of the exception list (within one area)
 * from the store; make the other snapshots of the origin copy that origin range out first; mark
 * the run's chunks as being merged (writes to them queue) and wait for tracked writes to them;
 * copy the run from the COW to the origin through the chunk copier; flush the origin; only then
 * {@code commit_merge} (the entries are cleared on disk); forget the chunks in memory, highest
 * first; release the queued writes. Entries leave the disk from the tail, and only after their
 * data is durable on the origin, so the list on disk is always a valid prefix and a crash at any
 * point leaves a COW whose remaining entries are merged again (copying the same data again).
 *
 * <p>Unlike the kernel, which runs one step at a time, the next run is taken while a step's copy
 * runs and its copy starts at once on the copier's lane ({@link ChunkCopier.Lane}): its reads
 * from the COW overlap this step's writes, and it reaches the origin after this step's run, as
 * in the kernel's order; a step commits only once its own copy is done. Steps of
 * {@value #BATCH_STEP_BYTES} bytes or more (with 4 KiB chunks a run stops at the area's 1 MiB)
 * commit in batches of up to {@value #COMMIT_BATCH} steps or 64 MiB on a committer thread (one
 * origin flush, their area writes, one COW flush) while the copies go on: two flushes per step
 * would otherwise cost about as much as the copy. The order on disk is the kernel's: entries
 * leave from the tail, each only after its data is durable on the origin, batches one at a time;
 * a crash with several steps copied leaves their runs on disk, to be merged again. Smaller steps commit one at a time (their
 * status shrinks step by step, as the kernel's).
 *
 * <p>Starts at every resume of the merging device, stops (after the step in progress) at its
 * presuspend and destructor and while another snapshot of the origin resumes; ends by itself when
 * nothing is left, when the snapshot is invalid, or on an error (merge failed: logged once with
 * the kernel's sentence, status {@code Merge failed}, data kept, and the next resume starts again).
 *
 * <p>Threads and locks: the merge thread owns {@link #nothingLeft}; the
 * committer thread (one per run of the loop) only commits the batches handed to it, one at a time,
 * and the loop waits for it before it ends. This object's monitor guards {@link #thread},
 * {@link #stopRequested} and {@link #steps}; it is never held while a step runs.
 */
final class Merger {
    private static final Logger log = LoggerFactory.getLogger(Merger.class);

    /**
     * Copied steps committed together (one origin flush, one COW flush for their area writes):
     * up to {@value #COMMIT_BATCH} steps or {@value #COMMIT_BATCH_BYTES} bytes. With 4 KiB
     * chunks a step moves at most one area's 1 MiB, and two flushes per MiB would cost about as
     * much as the copy; with 64 steps 4 KiB chunks merged at 0.78-0.81 of a raw copy, with 16 at
     * 0.74-0.75 (merge bench, side by side).
     * Only steps of at least {@link #BATCH_STEP_BYTES} wait for others (smaller ones commit at
     * once, and status shrinks step by step as the kernel's); writes queued on their chunks wait
     * for the batch (at most 64 MiB of copying).
     */
    static final int COMMIT_BATCH = 64;

    static final long COMMIT_BATCH_BYTES = 64L << 20;
    static final long BATCH_STEP_BYTES = 1 << 20;
    /** {@link #BATCH_STEP_BYTES} and {@link #COMMIT_BATCH} by default (tests batch small steps). */
    private final long batchStepBytes;

    private final int commitBatch;

    private final Snapshot snapshot;
    private final CopyOut copyOut;
    private final Registry registry;
    /** The merging target's max I/O length (the origin's smallest chunk size), for the copy-out of step 5. */
    private final LongSupplier stepSectors;

    private Thread thread;
    private boolean stopRequested;
    /** The merge thread's: prepare_merge found no entries left. */
    private boolean nothingLeft;

    private long steps;

    Merger(Snapshot snapshot, CopyOut copyOut, Registry registry, LongSupplier stepSectors, MergeSettings settings) {
        this.batchStepBytes = settings.batchStepBytes();
        this.commitBatch = settings.commitBatch();
        this.snapshot = snapshot;
        this.copyOut = copyOut;
        this.registry = registry;
        this.stepSectors = stepSectors;
    }

    /** start_merge: starts the loop unless it is running. */
    synchronized void start() {
        if (thread != null) {
            return;
        }
        stopRequested = false;
        nothingLeft = false;
        thread = Thread.ofPlatform()
                .name("dmsnap-merge-" + snapshot.deviceName())
                .daemon(true)
                .unstarted(this::run);
        thread.start();
    }

    /** stop_merge: asks the loop to stop and waits for the step in progress. No-op when not running. */
    void stop() {
        stopIfRunning();
    }

    /** Like {@link #stop()}; whether the loop was running (so that the caller restarts it). */
    boolean stopIfRunning() {
        Thread t;
        synchronized (this) {
            t = thread;
            if (t == null) {
                return false;
            }
            stopRequested = true;
        }
        if (t == Thread.currentThread()) {
            throw new IllegalStateException("the merge loop cannot wait for itself");
        }
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true; // the step must finish: a half-done step is not a state
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return true;
    }

    synchronized boolean isRunning() {
        return thread != null;
    }

    /** Steps done by this instance (for tests and metrics). */
    synchronized long steps() {
        return steps;
    }

    /** A stop was asked for since the last start (tests wait for it). */
    synchronized boolean stopRequested() {
        return stopRequested;
    }

    private void run() {
        ExecutorService committer = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform()
                .name("dmsnap-merge-commit-" + snapshot.deviceName())
                .daemon(true)
                .unstarted(r));
        CompletableFuture<String> committing = CompletableFuture.completedFuture(null);
        List<Step> copied = new ArrayList<>(); // copied, not yet committed, the last run of the list first
        long copiedBytes = 0;
        ChunkCopier.Lane lane = null;
        try {
            lane = snapshot.copier().lane();
            Step step = begin();
            if (step != null) {
                step.startCopy(lane);
            }
            while (step != null) {
                Step next = stopRequested() ? null : begin(); // while this step copies
                if (next != null) {
                    next.startCopy(lane); // read while this step's run is written, written after it
                }
                String failed = awaitCopy(step.copy);
                if (failed == null) {
                    copied.add(step);
                    copiedBytes += step.lengthBytes;
                    boolean large = step.lengthBytes >= batchStepBytes;
                    if (next == null || !large || copied.size() >= commitBatch || copiedBytes >= COMMIT_BATCH_BYTES) {
                        copiedBytes = 0;
                        failed = outcome(committing); // batches commit in order, one at a time
                        if (failed == null) {
                            List<Step> batch = List.copyOf(copied);
                            copied.clear();
                            committing = CompletableFuture.supplyAsync(() -> commit(batch), committer);
                            if (!large || next == null) {
                                failed = outcome(committing); // small steps one at a time, as the kernel's
                            }
                        }
                    }
                }
                if (failed != null) {
                    outcome(committing);
                    if (next != null) {
                        awaitCopy(next.copy); // not left running; abandoned with this step
                    }
                    fail(failed);
                    return;
                }
                step = next;
            }
            if (nothingLeft) {
                log.info("{}: merge finished", snapshot.deviceName());
            }
        } catch (InterruptedException e) {
            log.error("{}: merge interrupted", snapshot.deviceName());
            snapshot.failMergeStep();
        } catch (RuntimeException | Error e) {
            log.error("{}: merge stopped by an internal error", snapshot.deviceName(), e);
            snapshot.failMergeStep();
        } finally {
            if (lane != null) {
                lane.close(); // no copy left running either
            }
            outcome(committing); // never a commit left running when the loop has ended
            committer.shutdown();
            snapshot.store().releaseMerges(); // runs prepared and abandoned are taken again at the next start
            synchronized (this) {
                thread = null;
            }
        }
    }

    /** What a batch's commit came to: null, or the sentence that stops the merge. */
    private String outcome(CompletableFuture<String> commit) {
        try {
            return commit.join();
        } catch (java.util.concurrent.CompletionException | java.util.concurrent.CancellationException e) {
            log.error("{}: merge commit stopped by an internal error", snapshot.deviceName(), e.getCause());
            return "merge commit failed: " + e.getCause();
        }
    }

    /** A step from its chunks' marking on: its run, where its copy goes, and the copy once started. */
    private final class Step {
        final MergeRun run;
        final MergeSteps.MergeStep chunks;
        final long from;
        final long to;
        final long lengthBytes;
        /** The copy once started; null while not, or when the run lies past the end of the origin. */
        CompletableFuture<CopyResult> copy;

        Step(MergeRun run, MergeSteps.MergeStep chunks, long from, long to, long lengthBytes) {
            this.run = run;
            this.chunks = chunks;
            this.from = from;
            this.to = to;
            this.lengthBytes = lengthBytes;
        }

        /**
         * Step 8: the run from the COW to the origin on the copier's lane: read and written in
         * its buffer-sized pieces, after the runs started before it, while the merge thread takes
         * the next run.
         */
        void startCopy(ChunkCopier.Lane lane) {
            if (lengthBytes > 0) {
                copy = lane.copy(new CopyOp(
                        snapshot.cowHandle().device(),
                        from,
                        lengthBytes,
                        List.of(new CopyOp.Destination(snapshot.originHandle().device(), to))));
            }
        }
    }

    /**
     * Steps 1 to 7 of the next step: takes the run before those of the steps under way (the
     * store counts them), has the other snapshots copy its origin range, queues writes to its
     * chunks and waits for tracked writes. Null when there is nothing to do (nothing left, the
     * snapshot is invalid, the store unreadable).
     */
    private Step begin() throws InterruptedException {
        String name = snapshot.deviceName();
        if (!snapshot.isValid()) {
            log.error("{}: Snapshot is invalid: can't merge", name);
            return null;
        }
        ExceptionStore store = snapshot.store();
        MergeRun run;
        try {
            run = store.prepareMerge();
        } catch (IOException e) {
            log.error("{}: Read error in exception store: shutting down merge ({})", name, e.getMessage());
            snapshot.markMergeFailed();
            return null;
        }
        if (run == null) {
            nothingLeft = true;
            return null;
        }
        ChunkSize chunkSize = store.chunkSize();
        long startSector = chunkSize.firstSector(run.firstOld());
        long runSectors = run.count() * chunkSize.sectors();
        protectOtherSnapshots(startSector, runSectors);
        MergeSteps.MergeStep chunks = snapshot.beginMergeStep(run.firstOld(), run.count());
        snapshot.awaitTrackedWrites(chunks);
        long lengthBytes = Math.max(
                0, Math.min(runSectors, snapshot.originHandle().device().sizeSectors() - startSector) << 9);
        return new Step(run, chunks, run.firstNew() * chunkSize.bytes(), startSector << 9, lengthBytes);
    }

    /**
     * Steps 9 to 13 for copied steps, the last run of the list first: one origin flush, their
     * commit_merges with one COW flush, then their chunks are forgotten; null or the kernel's
     * sentence.
     */
    private String commit(List<Step> batch) {
        try {
            snapshot.originHandle().device().flush();
        } catch (IOException e) {
            return "Flush after merge failed: shutting down merge (" + e.getMessage() + ")";
        }
        try {
            snapshot.store()
                    .commitMerges(batch.stream().mapToInt(st -> st.run.count()).toArray());
        } catch (IOException | RuntimeException e) {
            return "Write error in exception store: shutting down merge (" + e.getMessage() + ")";
        }
        try {
            for (Step st : batch) {
                snapshot.finishMergeStep(st.chunks);
                synchronized (this) {
                    steps++;
                }
            }
        } catch (CorruptStoreException e) {
            return e.getMessage();
        }
        return null;
    }

    /** Waits for a step's copy (null: none): null, or the kernel's sentence for what failed. */
    private static String awaitCopy(CompletableFuture<CopyResult> copy) throws InterruptedException {
        if (copy == null) {
            return null;
        }
        String error;
        try {
            CopyResult r = copy.get();
            if (r.readError() != null) {
                error = "Read error: shutting down merge. (" + r.readError().getMessage() + ")";
            } else {
                error = r.succeeded(0)
                        ? null
                        : "Write error: shutting down merge. ("
                                + r.writeErrors().getFirst().getMessage() + ")";
            }
        } catch (ExecutionException e) {
            error = "Read error: shutting down merge. (" + e.getCause().getMessage() + ")";
        }
        return error;
    }

    /**
     * Step 5: every other valid, active, non-merging snapshot of the origin that lacks a chunk
     * of the range gets it copied now (the origin-write algorithm without a write, in steps of
     * the origin's smallest chunk size); repeated until nothing is needed.
     */
    private void protectOtherSnapshots(long startSector, long sectors) throws InterruptedException {
        long step = Math.max(1, stepSectors.getAsLong());
        var quiesce = registry.originIoLock(snapshot.originIdentity()).readLock();
        quiesce.lockInterruptibly();
        try {
            while (true) {
                List<CompletableFuture<Boolean>> waits = new ArrayList<>();
                for (long n = 0; n < sectors; n += step) {
                    waits.addAll(copyOut.start(startSector + n));
                }
                if (waits.isEmpty()) {
                    return;
                }
                CopyOut.awaitAll(waits);
            }
        } finally {
            quiesce.unlock();
        }
    }

    private boolean fail(String sentence) {
        log.error("{}: {}", snapshot.deviceName(), sentence);
        snapshot.failMergeStep();
        return false;
    }
}
