package dmsnap.store.copy;

import dmsnap.ffm.IoMemory;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * Copies runs of chunks between devices (kcopyd). A fixed pool of platform threads does the
 * blocking I/O (foreign calls would pin a virtual thread's carrier); each thread owns one
 * aligned off-heap buffer of {@code bufferBytes}, so a copy needs no allocation and no
 * {@code byte[]}. A copy longer than a buffer is done in buffer-sized pieces. The source is
 * read once per piece and written to every destination; errors are reported per destination.
 * The buffers live in huge pages ({@link IoMemory}): 1 MiB pieces into and out of a malloc'd
 * buffer took two to five times as long (merge bench, bench/RESULTS.md).
 *
 * <p>Lifetime: the copier owns its buffer memory and threads; {@link #close()} lets queued copies
 * finish, then frees the buffers. Thread-safe. It counts what it did ({@link #stats()}) for the
 * daemon's metrics.
 */
public final class ChunkCopier implements AutoCloseable {
    private final IoMemory memory;
    private final BlockingQueue<MemorySegment> buffers;
    private final BlockingQueue<MemorySegment> callerBuffers;
    private final ExecutorService pool;
    private final long bufferBytes;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final LongAdder copies = new LongAdder();
    private final LongAdder readBytes = new LongAdder();
    private final LongAdder writtenBytes = new LongAdder();
    private final LongAdder failedReads = new LongAdder();
    private final LongAdder failedWrites = new LongAdder();

    /**
     * What a copier has done since it was created.
     *
     * @param copies       copy operations finished, failed ones included
     * @param readBytes    bytes read from sources (once per operation, whatever its destinations)
     * @param writtenBytes bytes written to destinations (each destination counts)
     * @param readErrors   operations whose source read failed (nothing was written)
     * @param writeErrors  destinations whose write failed
     */
    public record Stats(long copies, long readBytes, long writtenBytes, long readErrors, long writeErrors) {
    }

    /**
     * @param threads     I/O threads (copies in flight at once)
     * @param bufferBytes bytes per buffer, a multiple of 4096; the largest piece one read moves
     */
    public ChunkCopier(int threads, long bufferBytes) {
        if (threads < 1 || bufferBytes < 4096 || bufferBytes % 4096 != 0) {
            throw new IllegalArgumentException("threads >= 1 and a buffer size that is a multiple of 4096");
        }
        this.bufferBytes = bufferBytes;
        this.buffers = new ArrayBlockingQueue<>(threads);
        this.callerBuffers = new ArrayBlockingQueue<>(threads);
        try {
            this.memory = IoMemory.forBuffers(2 * threads, bufferBytes);
        } catch (IOException e) {
            throw new UncheckedIOException("the chunk copier's buffers: " + e.getMessage(), e);
        }
        List<MemorySegment> slices = memory.slices(2 * threads, bufferBytes);
        buffers.addAll(slices.subList(0, threads));
        callerBuffers.addAll(slices.subList(threads, 2 * threads));
        AtomicInteger n = new AtomicInteger();
        ThreadFactory factory = r -> {
            Thread t = new Thread(r, "dmsnap-copier-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        this.pool = Executors.newFixedThreadPool(threads, factory);
    }

    /** Starts {@code op}; the future completes with its result (never exceptionally for I/O errors). */
    public CompletableFuture<CopyResult> copy(CopyOp op) {
        if (closed.get()) {
            return CompletableFuture.failedFuture(new IllegalStateException("the chunk copier is closed"));
        }
        try {
            return CompletableFuture.supplyAsync(() -> run(op), pool);
        } catch (RejectedExecutionException e) {
            return CompletableFuture.failedFuture(new IllegalStateException("the chunk copier is closed", e));
        }
    }

    /**
     * Does {@code op} on the calling thread when a caller buffer is free (there are as many as
     * I/O threads), else as {@link #copy}. For a caller that would only block until the copy is
     * done: the two thread hand-offs cost more than the copy of one chunk. The returned future
     * is complete when a buffer was free, so what the caller chains onto it runs here too.
     */
    public CompletableFuture<CopyResult> copyHere(CopyOp op) {
        MemorySegment buffer = closed.get() ? null : callerBuffers.poll();
        if (buffer == null) {
            return copy(op);
        }
        try {
            return CompletableFuture.completedFuture(run(op, buffer));
        } finally {
            callerBuffers.add(buffer);
        }
    }

    /** Copies done since creation (for tests). */
    public int completedCopies() {
        return copies.intValue();
    }

    /** Totals since creation; each number is exact, the set is not one atomic snapshot. */
    public Stats stats() {
        return new Stats(copies.sum(), readBytes.sum(), writtenBytes.sum(), failedReads.sum(), failedWrites.sum());
    }

    private CopyResult run(CopyOp op) {
        MemorySegment buffer = buffers.poll();
        if (buffer == null) {
            throw new IllegalStateException("more copies in flight than buffers");
        }
        try {
            return run(op, buffer);
        } finally {
            buffers.add(buffer);
        }
    }

    private CopyResult run(CopyOp op, MemorySegment buffer) {
        Exception[] writeErrors = new Exception[op.destinations().size()];
        try {
            for (long done = 0; done < op.lengthBytes(); done += bufferBytes) {
                long n = Math.min(bufferBytes, op.lengthBytes() - done);
                MemorySegment piece = buffer.asSlice(0, n);
                try {
                    op.source().read(op.sourceOffsetBytes() + done, piece);
                } catch (IOException | RuntimeException e) {
                    failedReads.increment();
                    return new CopyResult(e, Arrays.asList(new Exception[writeErrors.length]));
                }
                readBytes.add(n);
                for (int i = 0; i < writeErrors.length; i++) {
                    if (writeErrors[i] != null) {
                        continue; // this destination failed on an earlier piece already
                    }
                    CopyOp.Destination d = op.destinations().get(i);
                    try {
                        d.device().write(d.offsetBytes() + done, piece);
                        writtenBytes.add(n);
                    } catch (IOException | RuntimeException e) {
                        writeErrors[i] = e;
                        failedWrites.increment();
                    }
                }
            }
            return new CopyResult(null, Arrays.asList(writeErrors));
        } finally {
            copies.increment();
        }
    }

    /** Lets queued copies finish, then frees the buffers. Idempotent. */
    @Override
    public void close() throws InterruptedException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        pool.shutdown();
        while (!pool.awaitTermination(1, java.util.concurrent.TimeUnit.SECONDS)) {
            Thread.onSpinWait();
        }
        while (callerBuffers.remainingCapacity() > 0) { // a copy on a caller's thread still has one
            Thread.sleep(1);
        }
        memory.close();
    }

    /** Copies {@code ops} and waits for all of them (for callers that copy in batches). */
    public List<CopyResult> copyAll(List<CopyOp> ops) throws InterruptedException {
        List<CompletableFuture<CopyResult>> futures = new ArrayList<>();
        for (CopyOp op : ops) {
            futures.add(copy(op));
        }
        List<CopyResult> results = new ArrayList<>();
        for (CompletableFuture<CopyResult> f : futures) {
            try {
                results.add(f.get());
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("copy failed outside I/O", e.getCause());
            }
        }
        return results;
    }
}
