package dmsnap.store.copy;

import dmsnap.ffm.InFlight;
import dmsnap.ffm.IoMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
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
    /** Copies running on callers' threads ({@link #copyHere}); close() waits for them before freeing the buffers. */
    private final InFlight callerCopies = new InFlight("the chunk copier");

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
    public record Stats(long copies, long readBytes, long writtenBytes, long readErrors, long writeErrors) {}

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
        if (!callerCopies.tryAcquire()) {
            return copy(op); // closing: copy() refuses it
        }
        try {
            MemorySegment buffer = callerBuffers.poll();
            if (buffer == null) {
                return copy(op);
            }
            try {
                return CompletableFuture.completedFuture(run(op, buffer));
            } finally {
                callerBuffers.add(buffer);
            }
        } finally {
            callerCopies.release();
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
        Pieces pieces = new Pieces(op);
        for (long done = 0; done < op.lengthBytes(); done += bufferBytes) {
            MemorySegment piece = buffer.asSlice(0, Math.min(bufferBytes, op.lengthBytes() - done));
            if (!pieces.read(done, piece)) {
                break;
            }
            pieces.write(done, piece);
        }
        return pieces.result();
    }

    /** One op's pieces as they are read and written, and what failed; one piece at a time. */
    private final class Pieces {
        private final CopyOp op;
        private final Exception[] writeErrors;
        private Exception readError;

        Pieces(CopyOp op) {
            this.op = op;
            this.writeErrors = new Exception[op.destinations().size()];
        }

        /** Reads the piece at {@code done}; false when this or an earlier read failed (nothing more is written). */
        boolean read(long done, MemorySegment piece) {
            if (readError != null) {
                return false;
            }
            try {
                op.source().read(op.sourceOffsetBytes() + done, piece);
            } catch (IOException | RuntimeException e) {
                failedReads.increment();
                readError = e;
                return false;
            }
            readBytes.add(piece.byteSize());
            return true;
        }

        /** Writes the piece at {@code done} to every destination that has not failed yet. */
        void write(long done, MemorySegment piece) {
            if (readError != null) {
                return;
            }
            for (int i = 0; i < writeErrors.length; i++) {
                if (writeErrors[i] != null) {
                    continue; // this destination failed on an earlier piece already
                }
                CopyOp.Destination d = op.destinations().get(i);
                try {
                    d.device().write(d.offsetBytes() + done, piece);
                    writtenBytes.add(piece.byteSize());
                } catch (IOException | RuntimeException e) {
                    writeErrors[i] = e;
                    failedWrites.increment();
                }
            }
        }

        CopyResult result() {
            copies.increment();
            return readError != null
                    ? new CopyResult(readError, Arrays.asList(new Exception[writeErrors.length]))
                    : new CopyResult(null, Arrays.asList(writeErrors));
        }
    }

    /**
     * A lane of copies that reach their destinations in the order they were started, with the
     * source read ahead: each piece is read on one of the copier's threads into one of the
     * lane's two buffers and written on another, so a piece's read (of the same op, or of the
     * next) overlaps the previous piece's write. For the merge: runs are written to the origin
     * in the kernel's order while the next run is already being read from the COW (a merge of
     * 4 KiB chunks moves one 1 MiB run per step, so without this its reads and writes take
     * turns on the disk). No thread blocks waiting: each read waits (as a dependent stage) for
     * the write that last used its buffer, each write for its read and the write before it.
     *
     * <p>Lifetime: one owner starts copies (one thread at a time) and closes the lane, which
     * waits for its copies and frees its buffers; the copier must outlive it.
     */
    public final class Lane implements AutoCloseable {
        private final IoMemory memory;
        private final List<MemorySegment> laneBuffers;
        private CompletableFuture<Void> lastWrite = CompletableFuture.completedFuture(null);
        private CompletableFuture<Void> writeBeforeLast = CompletableFuture.completedFuture(null);
        /** The future the last copy() returned: close() waits for it, not for the last write, whose dependents may not have run yet. */
        private CompletableFuture<CopyResult> lastCopy = CompletableFuture.completedFuture(null);

        private long piecesStarted;

        private Lane() throws IOException {
            this.memory = IoMemory.forBuffers(2, bufferBytes);
            this.laneBuffers = memory.slices(2, bufferBytes);
        }

        /** Starts {@code op} after the lane's earlier copies; the future completes once it is written. */
        public synchronized CompletableFuture<CopyResult> copy(CopyOp op) {
            if (closed.get()) {
                return CompletableFuture.failedFuture(new IllegalStateException("the chunk copier is closed"));
            }
            Pieces pieces = new Pieces(op);
            for (long done = 0; done < op.lengthBytes(); done += bufferBytes) {
                long at = done;
                MemorySegment piece = laneBuffers
                        .get((int) (piecesStarted++ % 2))
                        .asSlice(0, Math.min(bufferBytes, op.lengthBytes() - done));
                CompletableFuture<Boolean> read = writeBeforeLast.thenApplyAsync(v -> pieces.read(at, piece), pool);
                CompletableFuture<Void> write = read.thenAcceptBothAsync(
                        lastWrite,
                        (ok, v) -> {
                            if (ok) {
                                pieces.write(at, piece);
                            }
                        },
                        pool);
                writeBeforeLast = lastWrite;
                lastWrite = write;
            }
            // Copies complete in the order they were started, so once the last one has, all have.
            lastCopy = lastWrite.thenCombine(lastCopy.handle((r, e) -> null), (v, earlier) -> pieces.result());
            return lastCopy;
        }

        /** Waits for the lane's copies (every future copy() returned is complete), then frees its buffers. Idempotent. */
        @Override
        public void close() {
            CompletableFuture<CopyResult> last;
            synchronized (this) {
                last = lastCopy;
            }
            try {
                last.exceptionally(e -> null).join();
            } finally {
                memory.close();
            }
        }
    }

    /** A new {@link Lane} with two buffers of this copier's size. */
    public Lane lane() {
        try {
            return new Lane();
        } catch (IOException e) {
            throw new UncheckedIOException("a copy lane's buffers: " + e.getMessage(), e);
        }
    }

    /** Lets queued copies finish, then frees the buffers. Idempotent. */
    @Override
    public void close() throws InterruptedException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        pool.shutdown();
        callerCopies.close(); // parks until every copy on a caller's thread has given its buffer back
        pool.awaitTermination(Long.MAX_VALUE, java.util.concurrent.TimeUnit.NANOSECONDS); // parks until drained
        memory.close();
    }
}
