package dmsnap.snapshot;

import dmsnap.store.ChunkSize;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.MergeRun;
import dmsnap.store.copy.CopyOp;
import dmsnap.store.copy.CopyResult;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
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
 * <p>Starts at every resume of the merging device, stops (after the step in progress) at its
 * presuspend and destructor and while another snapshot of the origin resumes; ends by itself when
 * nothing is left, when the snapshot is invalid, or on an error (merge failed: logged once with
 * the kernel's sentence, status {@code Merge failed}, data kept, and the next resume starts again).
 *
 * <p>Locks: this object's monitor guards {@link #thread} and {@link #stopRequested}; it is never
 * held while a step runs.
 */
final class Merger {
    private static final Logger log = LoggerFactory.getLogger(Merger.class);

    /** Sub-copy size of a run's copy. */
    static final long SUB_COPY_BYTES = 256 << 10;

    private final Snapshot snapshot;
    private final CopyOut copyOut;
    private final Registry registry;
    /** The merging target's max I/O length (the origin's smallest chunk size), for the copy-out of step 5. */
    private final LongSupplier stepSectors;
    private Thread thread;
    private boolean stopRequested;
    private long steps;

    Merger(Snapshot snapshot, CopyOut copyOut, Registry registry, LongSupplier stepSectors) {
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
        thread = Thread.ofPlatform().name("dmsnap-merge-" + snapshot.deviceName()).daemon(true).unstarted(this::run);
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

    private synchronized boolean stopRequested() {
        return stopRequested;
    }

    private void run() {
        org.slf4j.MDC.put("device", snapshot.deviceName());
        try {
            while (!stopRequested() && step()) {
                synchronized (this) {
                    steps++;
                }
            }
        } catch (InterruptedException e) {
            log.error("{}: merge interrupted", snapshot.deviceName());
            snapshot.failMergeStep();
        } catch (RuntimeException | Error e) {
            log.error("{}: merge stopped by an internal error", snapshot.deviceName(), e);
            snapshot.failMergeStep();
        } finally {
            synchronized (this) {
                thread = null;
            }
        }
    }

    /** One step; false when the loop ends (done, invalid, failed). */
    private boolean step() throws InterruptedException {
        String name = snapshot.deviceName();
        if (!snapshot.isValid()) {
            log.error("{}: Snapshot is invalid: can't merge", name);
            return false;
        }
        ExceptionStore store = snapshot.store();
        MergeRun run;
        try {
            run = store.prepareMerge();
        } catch (IOException e) {
            log.error("{}: Read error in exception store: shutting down merge ({})", name, e.getMessage());
            snapshot.markMergeFailed();
            return false;
        }
        if (run == null) {
            log.info("{}: merge finished", name);
            return false;
        }
        ChunkSize chunkSize = store.chunkSize();
        long startSector = chunkSize.firstSector(run.firstOld());
        long runSectors = run.count() * chunkSize.sectors();
        protectOtherSnapshots(startSector, runSectors);
        snapshot.beginMergeStep(run.firstOld(), run.count());
        snapshot.awaitTrackedWrites();
        Device origin = snapshot.originHandle().device();
        Device cow = snapshot.cowHandle().device();
        long lengthBytes = Math.min(runSectors, origin.sizeSectors() - startSector) << 9;
        if (lengthBytes > 0) {
            String failed = copyRun(cow, run.firstNew() * chunkSize.bytes(), origin, startSector << 9, lengthBytes,
                    chunkSize.bytes());
            if (failed != null) {
                return fail(failed);
            }
        }
        try {
            origin.flush();
        } catch (IOException e) {
            return fail("Flush after merge failed: shutting down merge (" + e.getMessage() + ")");
        }
        try {
            store.commitMerge(run.count());
        } catch (IOException | RuntimeException e) {
            return fail("Write error in exception store: shutting down merge (" + e.getMessage() + ")");
        }
        try {
            snapshot.finishMergeStep();
        } catch (CorruptStoreException e) {
            return fail(e.getMessage());
        }
        return true;
    }

    /**
     * Step 8: the run from the COW to the origin, in sub-copies of {@value #SUB_COPY_BYTES} bytes
     * (or one chunk, if larger) that the copier's threads run at once, so that reads and writes
     * overlap, as kcopyd splits a job into sub-jobs. Null, or the kernel's sentence for what failed.
     */
    private String copyRun(Device cow, long from, Device origin, long to, long lengthBytes, long chunkBytes)
            throws InterruptedException {
        long piece = Math.max(SUB_COPY_BYTES, chunkBytes);
        List<CompletableFuture<CopyResult>> copies = new ArrayList<>();
        for (long done = 0; done < lengthBytes; done += piece) {
            long n = Math.min(piece, lengthBytes - done);
            copies.add(snapshot.copier().copy(new CopyOp(cow, from + done, n,
                    List.of(new CopyOp.Destination(origin, to + done)))));
        }
        String readError = null;
        String writeError = null;
        for (CompletableFuture<CopyResult> c : copies) {
            try {
                CopyResult r = c.get();
                if (r.readError() != null && readError == null) {
                    readError = r.readError().getMessage();
                } else if (r.readError() == null && !r.succeeded(0) && writeError == null) {
                    writeError = r.writeErrors().getFirst().getMessage();
                }
            } catch (ExecutionException e) {
                if (readError == null) {
                    readError = String.valueOf(e.getCause().getMessage());
                }
            }
        }
        if (readError != null) {
            return "Read error: shutting down merge. (" + readError + ")";
        }
        return writeError == null ? null : "Write error: shutting down merge. (" + writeError + ")";
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
