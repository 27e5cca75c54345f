package dmsnap.store.persistent;

import dmsnap.ffm.Errno;
import dmsnap.store.AllocateAhead;
import dmsnap.store.ChunkSize;
import dmsnap.store.CommitCallback;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionStore;
import dmsnap.store.InOrderCommits;
import dmsnap.store.MergeRun;
import dmsnap.store.PendingRemap;
import dmsnap.store.RemapSink;
import dmsnap.store.StoreFullException;
import dmsnap.store.StoreUsage;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code P} / {@code PO}: the kernel's persistent exception store ({@code dm-snap-persistent.c}),
 * byte-compatible with it (layout in {@link PersistentLayout}).
 *
 * <p>Metadata (the header and the current area) is reached through {@link MetadataChunk}s
 * (mmapped where the device allows); data chunks never are. Commit protocol, as the kernel's:
 * remaps are applied strictly in allocation order (early completions are parked); an applied
 * remap waits while other prepared remaps are outstanding and its area is not full, so that many
 * share one write (group commit). A flush round then: zeroes the next area if this round fills
 * the current one, flushes the COW (the remaps' data and the zeroed area become durable), stores
 * the entries into the area, syncs it and flushes again, and only then runs the callbacks, in
 * order. A failed write makes the store invalid for good; later callbacks report failure.
 *
 * <p>Deferred commits (the cache modes {@code none} and {@code writeback}): a remap committed
 * with {@link #commitDeferred} does not ask for a round of its own, not even when it fills an
 * area: deferred remaps may fill several areas while they wait. They are written by the next
 * round anything else starts: a commit with the kernel's rule, {@link #commitThrough} or {@link
 * #sync} (a FLUSH, a FUA write, suspend, remove, the commit interval), or the deferred limit
 * ({@link #deferredLimit}) reached. Such a round writes all the areas it fills with one data
 * flush before them and one flush after them (see {@link #writeRound}), in allocation order, so
 * the COW after a sync is byte for byte what the kernel would have written. The round the limit
 * starts runs on the store's own thread ({@link #rounds}), not on the writer's: the write that
 * reached the limit is answered as every deferred one (a writeback round's data flush may have
 * 64 MiB of page cache to write). Writers go on deferring while it runs, up to {@link
 * #deferredBound}; a writer that finds that many waiting for a round waits for the round
 * (backpressure), so memory and what a crash can take back stay bounded.
 *
 * <p>A sparse COW file's blocks are reserved ahead of the next free chunk ({@link AllocateAhead}),
 * off the write path; that changes no byte of the COW and never its validity.
 *
 * <p>Locking: {@link #lock} guards every field below it. One committer at a time (the
 * "leader", {@link #flushing}) does a round's I/O without holding the lock; others stage their
 * remaps and return. Merge and commit never run at once on one store (a merging snapshot takes
 * no new exceptions). {@link #close} waits for rounds that other threads run before it unmaps.
 */
public final class PersistentExceptionStore implements ExceptionStore {
    private static final Logger log = LoggerFactory.getLogger(PersistentExceptionStore.class);

    private final Device cow;
    /** Reserves the COW file's blocks ahead of {@link #nextFree}. */
    private final AllocateAhead ahead;

    private final int originBlockBytes;
    /** The table's chunk size; 0 means "take the header's, or the default for a new COW". */
    private final ChunkSize tableChunkSize;

    private volatile boolean overflowSupported;

    /**
     * Runs the rounds the deferred limit starts, one at a time; owned by this store ({@link
     * #close} shuts it down and waits for it). Its one thread is gone when idle.
     */
    private final ThreadPoolExecutor rounds;
    /** The last thread {@link #rounds} made, for close to join (earlier ones have timed out). */
    private volatile Thread roundThread;

    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled when a round ends and when nobody leads any more (writers held back, close). */
    private final Condition roundEnded = lock.newCondition();

    private ChunkSize chunkSize;
    private PersistentLayout layout;
    private MetadataChunk header;
    /** The area new entries go into (or, while merging, the area entries are taken from). */
    private MetadataChunk area;
    /** While merging: entries at the end of the list handed out by prepareMerge and not yet committed. */
    private int mergePrepared;
    /** While merging: the areas before {@link #area}, nearest first, read ahead for runs before the last entries. */
    private final List<MetadataChunk> previousAreas = new ArrayList<>();

    private long currentArea;
    /** Entries of the current area that are on disk (or being written by the current round). */
    private int currentCommitted;

    private long nextFree = PersistentLayout.FIRST_DATA_CHUNK;
    private boolean valid = true;
    /** What made the store invalid through its own I/O (see {@link #failure()}); the first such reason. */
    private String failure;
    /**
     * Set when the COW was seen smaller than the chunks in use (truncated under us): their data is
     * gone, so no exception may be added, however large the file is again later (an autoextend
     * or a write past its end grows it back with holes).
     */
    private String shrank;

    private boolean loaded;
    private boolean closed;
    /** After a load, stale non-zero entries may follow the terminator; zero them before appending. */
    private boolean staleTail;
    /** Prepared remaps not yet applied. */
    private long pendingCount;

    private long nextSequence;
    private final InOrderCommits<Completion> inOrder = new InOrderCommits<>();
    private final ArrayDeque<Completion> staged = new ArrayDeque<>();
    /** How many of {@link #staged} were committed with the kernel's rule (not deferred). */
    private int eagerStaged;
    /** Remaps up to this sequence are written as soon as all of them have arrived (-1: none asked for). */
    private long demanded = -1;
    /** Every remap up to this sequence has been answered (its round is over). */
    private long answeredThrough = -1;
    /** Rounds that have taken their batch so far: a round numbered above a sync's start flushed after it. */
    private long roundsStarted;
    /** Entries the round running now took from {@link #staged} and has not yet added to its areas. */
    private int inRound;

    private final List<SyncWaiter> waiters = new ArrayList<>();
    private boolean flushing;
    /** The thread running rounds while {@link #flushing}; null while a round handed to {@link #rounds} has not started. */
    private Thread leader;
    /** Threads waiting for a round: writers held back by {@link #deferredBound}, and close. */
    private int waitingForRound;

    /**
     * At most this many deferred remaps wait for a round, over as many areas as they fill: each
     * holds a few hundred bytes of heap here and in the snapshot's pending table until its
     * round. 16384 are 64 areas of 4 KiB chunks (LVM's default), as many as one round writes
     * ({@link #MAX_AREAS_PER_ROUND}), so a 1 MiB write (256 exceptions, a whole area) is
     * committed once per 64 of them, not once per write.
     */
    public static final int DEFERRED_LIMIT = 16384;

    /**
     * And at most this much chunk data waits for a round: what the round's data flush must write
     * back (writeback's page cache) and what a crash can take back stay bounded whatever the
     * chunk size. 64 MiB is 16384 chunks of 4 KiB, 1024 of 64 KiB (the limit before areas could
     * wait), 16 of 4 MiB (an area of 4 MiB chunks holds 2^18 entries).
     */
    public static final long DEFERRED_DATA_BYTES = 64L << 20;

    /** How many deferred remaps may wait with chunks of {@code chunkBytes}: both limits above, at least 1. */
    public static int deferredLimit(long chunkBytes) {
        return (int) Math.max(1, Math.min(DEFERRED_LIMIT, DEFERRED_DATA_BYTES / chunkBytes));
    }

    /**
     * While a round runs, writers defer up to twice the limit (the round's remaps and as many
     * more); one that finds this many waiting for a round waits for the round to end.
     */
    public static int deferredBound(long chunkBytes) {
        return 2 * deferredLimit(chunkBytes);
    }

    private record Completion(PendingRemap remap, boolean copySucceeded, boolean deferred, CommitCallback callback) {}

    /**
     * A {@link #sync} waiting for every remap up to {@code target}; {@code roundsBefore}: rounds
     * started before it asked. Completed with whether the store was still valid and whether the
     * round that answered it started after it asked (its data flush then covers the caller's writes).
     */
    private record SyncWaiter(long target, long roundsBefore, CompletableFuture<Answer> answer) {}

    /** {@code flushedAfterAsking}: the round that answered started after the sync asked. */
    private record Answer(boolean valid, boolean flushedAfterAsking) {}

    /**
     * A store over {@code cow}. Nothing is read until {@link #load}; a handover destination is
     * created with chunk size 0 and never loaded.
     *
     * @param tableChunkSize    the table's chunk size (0: from the COW header, or the default)
     * @param overflowSupported the table said {@code PO}
     * @param originBlockBytes  the origin's logical block size (an on-disk chunk size must be a
     *                          multiple of it, as of the COW's)
     */
    public PersistentExceptionStore(
            Device cow, ChunkSize tableChunkSize, boolean overflowSupported, int originBlockBytes) {
        this(cow, tableChunkSize, overflowSupported, originBlockBytes, AllocateAhead.SHARED);
    }

    /**
     * The same, reserving a sparse COW's blocks ahead of the next free chunk on {@code
     * allocateAhead} (null: never; see {@link AllocateAhead}).
     */
    public PersistentExceptionStore(
            Device cow,
            ChunkSize tableChunkSize,
            boolean overflowSupported,
            int originBlockBytes,
            java.util.concurrent.Executor allocateAhead) {
        this.ahead = new AllocateAhead(cow, allocateAhead);
        this.rounds = roundExecutor(cow.name());
        this.cow = cow;
        this.tableChunkSize = tableChunkSize;
        this.chunkSize = tableChunkSize;
        this.overflowSupported = overflowSupported;
        this.originBlockBytes = originBlockBytes;
    }

    /**
     * One platform thread (the rounds do blocking I/O), started when a round is handed over, gone
     * after 10 s idle; the latest is kept in {@link #roundThread} for close to join.
     */
    private ThreadPoolExecutor roundExecutor(String cowName) {
        ThreadPoolExecutor pool = new ThreadPoolExecutor(1, 1, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "dmsnap-commit-" + cowName);
            t.setDaemon(true);
            roundThread = t;
            return t;
        });
        pool.allowCoreThreadTimeOut(true);
        return pool;
    }

    @Override
    public String typeLetter() {
        return "P";
    }

    @Override
    public ChunkSize chunkSize() {
        lock.lock();
        try {
            return chunkSize;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public boolean overflowSupported() {
        return overflowSupported;
    }

    @Override
    public void setOverflowSupported(boolean supported) {
        overflowSupported = supported;
    }

    @Override
    public boolean supportsMerge() {
        return true;
    }

    // ---- load ---------------------------------------------------------------------------------

    @Override
    public LoadResult load(RemapSink sink) throws IOException {
        lock.lock();
        try {
            if (loaded) {
                throw new IllegalStateException("the store of " + cow.name() + " is loaded already");
            }
            loaded = true;
            DiskHeader disk = readHeader();
            if (disk.isNew()) {
                initialiseNewCow();
                return LoadResult.VALID;
            }
            if (disk.magic() != PersistentLayout.SNAP_MAGIC) {
                throw new CorruptStoreException(Errno.ENXIO, "Invalid or corrupt snapshot");
            }
            if (disk.version() != PersistentLayout.SNAPSHOT_DISK_VERSION) {
                throw new CorruptStoreException("unable to handle snapshot disk version " + disk.version());
            }
            long diskChunk = Integer.toUnsignedLong(disk.chunkSectors());
            if (tableChunkSize.isSet() && tableChunkSize.sectors() != diskChunk) {
                log.warn(
                        "{}: chunk size {} in device metadata overrides table chunk size of {}.",
                        cow.name(),
                        diskChunk,
                        tableChunkSize);
            }
            String reason = ChunkSize.invalidReason(diskChunk, cow.logicalBlockBytes(), originBlockBytes);
            if (reason != null) {
                throw new CorruptStoreException("invalid on-disk chunk size " + diskChunk + ": " + reason + ".");
            }
            useChunkSize(new ChunkSize(diskChunk));
            checkFits(1, "the header chunk");
            header = MetadataChunk.open(cow, 0, layout.chunkBytes());
            if (disk.valid() == 0) {
                valid = false;
                return LoadResult.INVALID;
            }
            readExceptions(sink);
            return LoadResult.VALID;
        } catch (InternalError e) {
            throw MetadataChunk.mappedAccessFault(cow, e);
        } finally {
            lock.unlock();
        }
    }

    private DiskHeader readHeader() throws IOException {
        int block = cow.logicalBlockBytes();
        if (cow.sizeBytes() < block) {
            throw new CorruptStoreException(
                    Errno.EIO,
                    "the COW " + cow.name() + " is too small to hold a header (" + cow.sizeBytes() + " bytes)");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment first = arena.allocate(block, Math.max(4096, cow.bufferAlignmentBytes()));
            cow.read(0, first);
            return DiskHeader.read(first);
        }
    }

    private void useChunkSize(ChunkSize size) {
        chunkSize = size;
        layout = new PersistentLayout(size);
    }

    /** A brand-new COW (magic 0): header chunk, then a zeroed area 0, at load time as the kernel. */
    private void initialiseNewCow() throws IOException {
        long sectors = tableChunkSize.isSet()
                ? tableChunkSize.sectors()
                : Math.max(PersistentLayout.DEFAULT_CHUNK_SECTORS, cow.logicalBlockBytes() / 512);
        useChunkSize(new ChunkSize(sectors));
        checkFits(2, "the header and area 0");
        zeroChunks(0, 2);
        header = MetadataChunk.open(cow, 0, layout.chunkBytes());
        DiskHeader.fresh(sectors, true).writeChunk(header.segment());
        header.syncAll();
        area = MetadataChunk.open(cow, layout.chunkOffsetBytes(layout.areaLocation(0)), layout.chunkBytes());
        area.segment().fill((byte) 0);
        area.syncAll();
        cow.flush();
        currentArea = 0;
        currentCommitted = 0;
        nextFree = PersistentLayout.FIRST_DATA_CHUNK;
    }

    /**
     * Zeroes {@code count} chunks from {@code first} with a device write, as the kernel writes a
     * zeroed area: a sparse COW's file system that has no block left says ENOSPC here, where a
     * store into the mapping of a hole would get SIGBUS. The chunks are mapped afterwards.
     */
    private void zeroChunks(long first, int count) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment zeroes =
                    arena.allocate(count * layout.chunkBytes(), Math.max(4096, cow.bufferAlignmentBytes()));
            cow.write(layout.chunkOffsetBytes(first), zeroes);
        }
    }

    private void checkFits(long chunks, String what) throws IOException {
        if (chunks * layout.chunkBytes() > cow.sizeBytes()) {
            throw new CorruptStoreException(
                    Errno.EIO, CowDamage.tooSmallFor(cow.name(), cow.sizeBytes(), what, chunkSize.sectors()));
        }
    }

    /**
     * Reads areas 0, 1, ... replaying entries until the first entry whose new chunk is 0
     * ({@link AreaWalker}). The kernel trusts what it reads; dmsnap also refuses entries it could
     * not serve correctly (pointing into metadata or past the end, a COW chunk used twice) rather
     * than corrupting data later, with the sentences {@code cow check} prints ({@link CowDamage}).
     */
    private void readExceptions(RemapSink sink) throws IOException {
        long cowChunks = cow.sizeBytes() / layout.chunkBytes();
        AreaWalker<MetadataChunk> walker = new AreaWalker<>(
                layout, cowChunks, (k, offsetBytes) -> MetadataChunk.open(cow, offsetBytes, layout.chunkBytes()));
        AreaWalker.End<MetadataChunk> end = walker.walk(new AreaWalker.Visitor() {
            @Override
            public void entry(long k, int index, long byteOffset, long oldChunk, long newChunk) throws IOException {
                sink.remap(oldChunk, newChunk);
                if (nextFree <= newChunk) {
                    nextFree = newChunk + 1;
                }
            }

            @Override
            public void damage(CowInspector.Problem problem) throws CorruptStoreException {
                if (problem.kind().refusesLoad()) {
                    // An area past the end is one the kernel fails to read (EIO); the rest it would load.
                    Errno errno = problem.kind() == CowDamage.NO_TERMINATOR ? Errno.EIO : Errno.EINVAL;
                    throw new CorruptStoreException(errno, problem.message());
                }
                // Stale entries after the terminator: the kernel ignores them; they are zeroed
                // before the first append (staleTail).
            }
        });
        if (end == null) {
            throw new AssertionError("the walk of " + cow.name() + " ended without a terminator, unrefused");
        }
        currentArea = end.area();
        currentCommitted = end.entries();
        staleTail = end.staleTail();
        area = end.opened();
        nextFree = layout.skipMetadata(nextFree);
        sink.endOfList();
    }

    // ---- prepare / commit -------------------------------------------------------------------------

    @Override
    public PendingRemap prepare(long oldChunk) throws IOException {
        return prepare(oldChunk, 1).getFirst();
    }

    @Override
    public List<PendingRemap> prepare(long firstOldChunk, int count) throws IOException {
        List<PendingRemap> remaps = new ArrayList<>(count);
        long lastChunkBytes;
        lock.lock();
        try {
            requireReady();
            // The size is read again for every write that allocates, as the kernel's get_dev_size
            // for each chunk: the COW may have grown (autoextend), or shrunk under us (a truncated
            // file): then the chunks in use are gone, and no new exception may be made on top of them.
            long sizeSectors = noteSize(cow.refreshSize()) >>> 9;
            if (shrank != null) {
                throw new StoreFullException(shrank);
            }
            while (remaps.size() < count && (nextFree + 1) * chunkSize.sectors() <= sizeSectors) {
                long newChunk = nextFree++;
                nextFree = layout.skipMetadata(nextFree);
                pendingCount++;
                remaps.add(new PendingRemap(firstOldChunk + remaps.size(), newChunk, nextSequence++));
            }
            if (remaps.isEmpty()) {
                throw new StoreFullException("COW " + cow.name() + " is full (" + sizeSectors + " sectors)");
            }
            lastChunkBytes = layout.chunkOffsetBytes(remaps.getLast().newChunk());
        } finally {
            lock.unlock();
        }
        ahead.allocated(lastChunkBytes);
        return remaps;
    }

    /** Remembers a size below the chunks in use (see {@link #shrank}); returns it. Caller holds {@link #lock}. */
    private long noteSize(long sizeBytes) {
        long inUseSectors = nextFree * chunkSize.sectors();
        if (shrank == null && sizeBytes >>> 9 < inUseSectors) {
            shrank = "COW " + cow.name() + " shrank to " + (sizeBytes >>> 9) + " sectors, below the " + inUseSectors
                    + " sectors in use";
        }
        return sizeBytes;
    }

    @Override
    public void commit(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {
        arrive(new Completion(remap, copySucceeded, false, callback));
    }

    @Override
    public void commitDeferred(PendingRemap remap, boolean copySucceeded, CommitCallback callback) {
        arrive(new Completion(remap, copySucceeded, true, callback));
    }

    @Override
    public void commit(List<PendingRemap> run, boolean copySucceeded, CommitCallback callback) {
        arrive(completions(run, copySucceeded, false, callback));
    }

    @Override
    public void commitDeferred(List<PendingRemap> run, boolean copySucceeded, CommitCallback callback) {
        arrive(completions(run, copySucceeded, true, callback));
    }

    private static List<Completion> completions(
            List<PendingRemap> run, boolean copySucceeded, boolean deferred, CommitCallback callback) {
        List<Completion> completions = new ArrayList<>(run.size());
        for (PendingRemap remap : run) {
            completions.add(new Completion(remap, copySucceeded, deferred, callback));
        }
        return completions;
    }

    private void arrive(Completion completion) {
        arrive(List.of(completion));
    }

    /** Takes in {@code run} (consecutive sequence numbers) under one hold of {@link #lock}. */
    private void arrive(List<Completion> run) {
        if (run.isEmpty()) {
            return;
        }
        long first = run.getFirst().remap().sequence();
        for (int i = 1; i < run.size(); i++) {
            if (run.get(i).remap().sequence() != first + i) {
                throw new IllegalArgumentException("a run of commits with a gap at sequence " + (first + i));
            }
        }
        boolean lead = false;
        lock.lock();
        try {
            for (Completion c : inOrder.arrive(first, run)) {
                pendingCount--;
                if (!c.copySucceeded()) {
                    valid = false;
                }
                if (!c.deferred()) {
                    eagerStaged++;
                }
                staged.add(c);
            }
            if (becomeLeader()) {
                // Only the deferred limit asks: nobody waits for this round, so the writer does not.
                lead = eagerDue() || demandMet() || !handOver();
            }
            if (!lead && run.getFirst().deferred()) {
                holdBack();
            }
        } finally {
            lock.unlock();
        }
        if (lead) {
            flushRounds();
        }
    }

    /**
     * Hands the rounds this thread was to lead to {@link #rounds}; false when it takes no more
     * work (the store is closing), then the caller leads. Caller holds {@link #lock} and leads.
     */
    private boolean handOver() {
        if (closed) {
            return false;
        }
        try {
            rounds.execute(this::leadHandedOverRounds);
        } catch (RejectedExecutionException shutDown) {
            return false; // closed meanwhile: the caller runs the round, which writes nothing
        }
        leader = null; // until the round's thread takes over
        return true;
    }

    /** The root of the thread of {@link #rounds}. */
    private void leadHandedOverRounds() {
        lock.lock();
        try {
            leader = Thread.currentThread();
        } finally {
            lock.unlock();
        }
        try {
            flushRounds();
        } catch (Throwable t) {
            // flushRounds has logged it, invalidated the store and answered every commit: there
            // is nobody to throw it to on this thread.
        }
    }

    /**
     * Backpressure: while another thread runs a round and {@link #deferredBound} remaps wait for
     * rounds (the running one's included), the writer waits for a round to end. Caller holds
     * {@link #lock}.
     */
    private void holdBack() {
        if (!overBound()) {
            return;
        }
        waitingForRound++;
        try {
            while (overBound()) {
                roundEnded.awaitUninterruptibly();
            }
        } finally {
            waitingForRound--;
        }
    }

    private boolean overBound() {
        return flushing
                && leader != Thread.currentThread()
                && staged.size() + inRound >= deferredBound(layout.chunkBytes());
    }

    /** Threads waiting for a round to end now: writers held back, a close (tests). */
    int waitingForRound() {
        lock.lock();
        try {
            return waitingForRound;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void commitThrough(long sequence) {
        lock.lock();
        try {
            demanded = Math.max(demanded, sequence);
            if (!becomeLeader()) {
                return;
            }
        } finally {
            lock.unlock();
        }
        flushRounds();
    }

    @Override
    public long nextSequence() {
        lock.lock();
        try {
            return nextSequence;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void sync(boolean flushData) throws IOException, InterruptedException {
        SyncWaiter waiter = null;
        boolean lead = false;
        lock.lock();
        try {
            long target = nextSequence - 1;
            if (target > answeredThrough) {
                waiter = new SyncWaiter(target, roundsStarted, new CompletableFuture<>());
                waiters.add(waiter);
                demanded = Math.max(demanded, target);
                lead = becomeLeader();
            }
        } finally {
            lock.unlock();
        }
        if (lead) {
            flushRounds();
        }
        boolean covered = false;
        if (waiter != null) {
            try {
                covered = waiter.answer().get().flushedAfterAsking();
            } catch (ExecutionException e) {
                throw new AssertionError("a sync is only ever answered", e);
            }
        }
        // Invalid is for good: a valid store has committed every remap it answered.
        lock.lock();
        try {
            if (!valid) {
                throw new IOException("committing the exceptions of " + cow.name() + " failed"
                        + (failure == null ? ": the store is invalid" : ": " + failure));
            }
        } finally {
            lock.unlock();
        }
        if (flushData && !covered) {
            cow.flush(); // no round flushed after every write the caller completed
        }
    }

    /** Sets {@link #flushing} when a round is needed and nobody runs rounds; caller holds {@link #lock}. */
    private boolean becomeLeader() {
        if (flushing || !roundNeeded()) {
            return false;
        }
        flushing = true;
        leader = Thread.currentThread();
        return true;
    }

    /** Nobody runs rounds from now on; caller holds {@link #lock}. */
    private void stopLeading() {
        flushing = false;
        leader = null;
        roundEnded.signalAll();
    }

    /**
     * Whether staged remaps must be written now: the kernel's rule when a commit made with it is
     * staged (nothing else outstanding, or the area full); for deferred ones only the deferred
     * limit or a demand ({@link #commitThrough}, {@link #sync}) whose remaps have all arrived,
     * however many areas they fill. Caller holds {@link #lock}.
     */
    private boolean roundNeeded() {
        if (staged.isEmpty()) {
            return false;
        }
        return eagerDue() || staged.size() >= deferredLimit(layout.chunkBytes()) || demandMet();
    }

    /** The kernel's rule asks for a round: an eager commit is staged and nothing else is outstanding, or its area is full. */
    private boolean eagerDue() {
        return eagerStaged > 0 && (pendingCount == 0 || currentCommitted + staged.size() >= layout.exceptionsPerArea());
    }

    /** A demand covers the first staged remap and every remap it asks for has arrived; caller holds {@link #lock}. */
    private boolean demandMet() {
        return demanded >= staged.peekFirst().remap().sequence() && inOrder.nextExpected() > demanded;
    }

    /**
     * Runs rounds while some are needed; the caller set {@link #flushing}. Whatever goes wrong in
     * a round (an {@link Error} from a callback, a bug) must not leave {@link #flushing} set with
     * nobody flushing: every later commit would wait for a leader that is gone. So the store is
     * invalidated and every commit not yet answered is answered as failed.
     */
    private void flushRounds() {
        List<Completion> unanswered = new ArrayList<>();
        try {
            runRounds(unanswered);
        } catch (Throwable t) {
            List<Completion> rest = new ArrayList<>(unanswered);
            rest.removeIf(java.util.Objects::isNull); // answered already
            lock.lock();
            try {
                valid = false;
                if (failure == null) {
                    failure = "committing exceptions failed: " + t;
                }
                rest.addAll(staged);
                staged.clear();
                eagerStaged = 0;
                inRound = 0;
                stopLeading();
                answerWaiters(Long.MAX_VALUE, false, false);
            } finally {
                lock.unlock();
            }
            log.error("{}: committing exceptions failed, the snapshot is invalidated", cow.name(), t);
            for (Completion c : rest) {
                try {
                    c.callback().committed(c.remap(), false);
                } catch (RuntimeException | Error e) {
                    t.addSuppressed(e);
                }
            }
            throw t;
        }
    }

    /**
     * The rounds; {@code unanswered} holds the current round's commits whose callback has not run
     * yet (answered ones are nulled, in order: removing each from the front would make answering a
     * round of n commits cost n^2/2 moves, some 10^8 for a round of 16384).
     */
    private void runRounds(List<Completion> unanswered) {
        while (true) {
            List<Completion> batch = unanswered;
            batch.clear();
            long areaIndex;
            int base;
            boolean writeIt;
            String lost;
            long round;
            lock.lock();
            try {
                if (!roundNeeded()) {
                    stopLeading();
                    return;
                }
                int take = roundSize();
                while (batch.size() < take) {
                    Completion c = staged.poll();
                    if (!c.deferred()) {
                        eagerStaged--;
                    }
                    batch.add(c);
                }
                round = ++roundsStarted;
                inRound = batch.size();
                areaIndex = currentArea;
                base = currentCommitted;
                writeIt = valid && !closed;
                lost = shrank;
            } finally {
                lock.unlock();
            }
            List<MetadataChunk> later = new ArrayList<>();
            String writeFailure = !writeIt ? null : lost != null ? lost : writeRound(batch, areaIndex, base, later);
            boolean written = writeIt && writeFailure == null;
            boolean ok;
            lock.lock();
            try {
                inRound = 0;
                roundEnded.signalAll(); // writers held back: the next round has room for them
                if (writeFailure != null && failure == null) {
                    failure = writeFailure;
                }
                if (!written || closed) {
                    valid = valid && written;
                    later.forEach(MetadataChunk::close); // a store closed meanwhile has unmapped the rest
                } else {
                    int total = base + batch.size();
                    int filled = total / (int) layout.exceptionsPerArea();
                    if (filled > 0) {
                        // The filled areas are done with; the one after them is the current area.
                        area.close();
                        for (int j = 0; j < filled - 1; j++) {
                            later.get(j).close();
                        }
                        area = later.get(filled - 1);
                    }
                    currentArea = areaIndex + filled;
                    currentCommitted = total % (int) layout.exceptionsPerArea();
                }
                ok = valid;
            } finally {
                lock.unlock();
            }
            long last = batch.getLast().remap().sequence();
            for (int i = 0; i < batch.size(); i++) {
                Completion c = batch.set(i, null);
                try {
                    c.callback().committed(c.remap(), ok);
                } catch (RuntimeException e) {
                    log.error("{}: commit callback for {} failed", cow.name(), c.remap(), e);
                }
            }
            lock.lock();
            try {
                answeredThrough = last;
                answerWaiters(last, ok, true, round);
            } finally {
                lock.unlock();
            }
        }
    }

    /** Answers the syncs waiting for remaps up to {@code through}; caller holds {@link #lock}. */
    private void answerWaiters(long through, boolean ok, boolean roundFlushed, long round) {
        for (java.util.Iterator<SyncWaiter> it = waiters.iterator(); it.hasNext(); ) {
            SyncWaiter w = it.next();
            if (w.target() <= through) {
                it.remove();
                w.answer().complete(new Answer(ok, roundFlushed && round > w.roundsBefore()));
            }
        }
    }

    private void answerWaiters(long through, boolean ok, boolean roundFlushed) {
        answerWaiters(through, ok, roundFlushed, 0);
    }

    /**
     * How many staged entries the next round writes: those that fill the current area (or all,
     * when they do not), then - past a filled area - whole areas more, and the rest when nothing
     * else is outstanding (the kernel would write that now too) or a demand asks for it (a FLUSH
     * would otherwise wait for a second round). Entries staged while a round's flushes run, or
     * deferred ones that filled several areas, would otherwise wait for one round per area; here
     * one pair of flushes serves them all. An area whose zeroing of the next one would fall past
     * the end of the COW is left to a round of its own, which fails as the kernel's does. Caller
     * holds {@link #lock}.
     */
    private int roundSize() {
        int epa = (int) layout.exceptionsPerArea();
        int take = Math.min(epa - currentCommitted, staged.size());
        if (currentCommitted + take < epa) {
            return take;
        }
        for (int areas = 1; areas < MAX_AREAS_PER_ROUND && staged.size() > take; areas++) {
            int more = Math.min(epa, staged.size() - take);
            if (more < epa) {
                return pendingCount == 0 || demandMet() ? take + more : take;
            }
            if (!fitsQuietly(layout.areaLocation(currentArea + areas + 1))) {
                return take;
            }
            take += more;
        }
        return take;
    }

    private boolean fitsQuietly(long chunk) {
        try {
            return fits(chunk);
        } catch (IOException e) {
            return false; // the round of its own reports it
        }
    }

    /** At most this many areas get their entries in one round (bounds a round's latency and mappings). */
    static final int MAX_AREAS_PER_ROUND = 64;

    private boolean fits(long chunk) throws IOException {
        long end = (chunk + 1) * layout.chunkBytes();
        return end <= cow.sizeBytes() || end <= cow.refreshSize();
    }

    /**
     * One round's I/O: the entries of {@code batch} from slot {@code base} of area
     * {@code areaIndex} on, into the areas after it as they fill ({@code later} receives the
     * mapping of each area after {@code areaIndex} the round reaches, in order; the last one is
     * zeroed only when the batch ends on a filled area). Null when done, else why not: any write
     * or flush failed (the snapshot's invalidation line reports it).
     */
    private String writeRound(List<Completion> batch, long areaIndex, int base, List<MetadataChunk> later) {
        int epa = (int) layout.exceptionsPerArea();
        int total = base + batch.size();
        int filled = total / epa;
        try {
            if (header.isMapped() && DiskHeader.read(header.segment()).magic() != PersistentLayout.SNAP_MAGIC) {
                // The file was truncated (and grown again) or overwritten under us: what the areas
                // held is gone, so nothing may be added to them.
                return "the header is gone (the file was truncated or overwritten)";
            }
            AreaEntries entries = area.entries();
            if (staleTail) {
                // Entries after the terminator were never part of the list; clear them before
                // appending so that they cannot become part of it.
                entries.clear(base, epa - base);
                area.sync(AreaEntries.offsetBytes(base), AreaEntries.lengthBytes(epa - base));
                staleTail = false;
            }
            // Every area after a filled one is zeroed before any entry of this round can be on disk:
            // a filled area must never be followed by stale entries (the kernel zeroes the next area
            // in the round that fills one).
            for (int j = 1; j <= filled; j++) {
                long next = layout.areaLocation(areaIndex + j);
                if (!fits(next)) {
                    // The kernel's allocator does not reserve the next area: on a COW that ends
                    // here the zeroing write fails and the snapshot is invalidated.
                    return "cannot zero area " + (areaIndex + j) + " at chunk " + next + ": past the end of the COW";
                }
                zeroChunks(next, 1); // durable with the data, at the flush below
                MetadataChunk zeroed = MetadataChunk.open(cow, layout.chunkOffsetBytes(next), layout.chunkBytes());
                zeroed.prefetch(); // read while the flush below runs: storing its entries then waits for nothing
                later.add(zeroed);
            }
            // The remaps' data (and the zeroed areas) must be durable before any entry is.
            cow.flush();
            for (int i = 0; i < batch.size(); i++) {
                PendingRemap r = batch.get(i).remap();
                int slot = base + i;
                AreaEntries into =
                        slot < epa ? entries : later.get(slot / epa - 1).entries();
                into.set(slot % epa, r.oldChunk(), r.newChunk());
            }
            if (total <= epa) {
                // One area, as the kernel: its write with FUA.
                area.sync(AreaEntries.offsetBytes(base), AreaEntries.lengthBytes(batch.size()));
                if (!area.syncIsDurable()) {
                    cow.flush(); // the kernel's FUA on the area write; msync(MS_SYNC) of a real mapping is one
                }
                return null;
            }
            // Several areas: each written back, then one flush makes them all durable. Until it
            // returns, any of them may be on disk without the others, and that is safe without a
            // flush between them: every chunk they point at, and every area after a filled one
            // (zeroed above), was made durable by the data flush; the loader walks areas in order
            // and stops at the first entry that is zero, so a later area on disk behind an earlier
            // one that is not (still ending in zeroes) is never read, and a filled area followed
            // by the old state of the next one loads as a shorter list, a prefix in allocation
            // order. The next round that fills that area zeroes its successor again before any of
            // its entries. None of this round's remaps has been acknowledged yet.
            area.writeBack(AreaEntries.offsetBytes(base), AreaEntries.lengthBytes(epa - base));
            for (int j = 1; j <= filled; j++) {
                int count = Math.min(epa, total - j * epa);
                if (count > 0) {
                    later.get(j - 1).writeBack(0, AreaEntries.lengthBytes(count));
                }
            }
            cow.flush();
            return null;
        } catch (IOException | RuntimeException e) {
            return "writing exception area " + areaIndex + " failed: " + e.getMessage();
        } catch (InternalError e) {
            return "writing exception area " + areaIndex + " failed: "
                    + MetadataChunk.mappedAccessFault(cow, e).getMessage();
        }
    }

    // ---- merge ------------------------------------------------------------------------------------

    @Override
    public MergeRun prepareMerge() throws IOException {
        lock.lock();
        try {
            requireReady();
            int taken = mergePrepared;
            if (currentCommitted == 0) {
                if (currentArea == 0) {
                    return null;
                }
                stepBack();
            }
            // Areas before the current one are full: the run ends in the area where `taken` runs out.
            AreaEntries entries = area.entries();
            long end = currentCommitted - (long) taken;
            for (int back = 1; end <= 0; back++) {
                if (currentArea - back < 0) {
                    return null;
                }
                while (previousAreas.size() < back) {
                    previousAreas.addLast(MetadataChunk.open(
                            cow,
                            layout.chunkOffsetBytes(layout.areaLocation(currentArea - previousAreas.size() - 1)),
                            layout.chunkBytes()));
                }
                entries = previousAreas.get(back - 1).entries();
                end += layout.exceptionsPerArea();
            }
            int last = (int) end - 1;
            long lastOld = entries.oldChunk(last);
            long lastNew = entries.newChunk(last);
            int count = 1;
            while (count <= last) {
                if (entries.oldChunk(last - count) != lastOld - count
                        || entries.newChunk(last - count) != lastNew - count) {
                    break;
                }
                count++;
            }
            mergePrepared += count;
            return new MergeRun(lastOld, lastNew, count);
        } catch (InternalError e) {
            throw MetadataChunk.mappedAccessFault(cow, e);
        } finally {
            lock.unlock();
        }
    }

    /** The current area is merged: the one before it (read ahead, or read now) becomes current, full. */
    private void stepBack() throws IOException {
        MetadataChunk previous = !previousAreas.isEmpty()
                ? previousAreas.removeFirst()
                : MetadataChunk.open(
                        cow, layout.chunkOffsetBytes(layout.areaLocation(currentArea - 1)), layout.chunkBytes());
        area.close();
        area = previous;
        currentArea--;
        currentCommitted = (int) layout.exceptionsPerArea();
    }

    @Override
    public void commitMerge(int count) throws IOException {
        lock.lock();
        try {
            requireReady();
            if (currentCommitted == 0 && currentArea > 0) {
                stepBack(); // the run was prepared past the end of the area merged before it
            }
            if (count < 1 || count > currentCommitted) {
                throw new IllegalArgumentException("cannot merge " + count + " of " + currentCommitted + " entries");
            }
            long from = AreaEntries.offsetBytes(currentCommitted - count);
            long length = AreaEntries.lengthBytes(count);
            MemorySegment entries = area.entries().slice(currentCommitted - count, count);
            byte[] before = entries.toArray(ValueLayout.JAVA_BYTE);
            entries.fill((byte) 0);
            try {
                // The kernel writes the area with PREFLUSH + FUA. No earlier COW write needs to be
                // durable first (a merge allocates nothing; what it read is on the origin and flushed),
                // so one flush of the area is enough: msync(MS_SYNC) of a real mapping is that.
                area.sync(from, length);
                if (!area.syncIsDurable()) {
                    cow.flush();
                }
            } catch (IOException | RuntimeException e) {
                // The kernel leaves the entries cleared in its area buffer, so a restarted merge would
                // take (0, 0) as the next run. Keep them instead: the disk holds either version (both
                // are safe, the data is on the origin already), and a retry merges them again.
                entries.copyFrom(MemorySegment.ofArray(before));
                mergePrepared = 0;
                throw e;
            }
            currentCommitted -= count;
            mergePrepared = Math.max(0, mergePrepared - count);
            nextFree = layout.areaLocation(currentArea) + currentCommitted + 1;
        } catch (InternalError e) {
            mergePrepared = 0;
            throw MetadataChunk.mappedAccessFault(cow, e);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void commitMerges(int... counts) throws IOException {
        lock.lock();
        try {
            requireReady();
            for (int count : counts) {
                if (currentCommitted == 0 && currentArea > 0) {
                    stepBack(); // the area merged before this run is written back already
                }
                if (count < 1 || count > currentCommitted) {
                    throw new IllegalArgumentException(
                            "cannot merge " + count + " of " + currentCommitted + " entries");
                }
                long from = AreaEntries.offsetBytes(currentCommitted - count);
                long length = AreaEntries.lengthBytes(count);
                area.entries().clear(currentCommitted - count, count);
                currentCommitted -= count;
                mergePrepared = Math.max(0, mergePrepared - count);
                nextFree = layout.areaLocation(currentArea) + currentCommitted + 1;
                area.writeBack(from, length);
            }
            cow.flush();
        } catch (IOException | RuntimeException e) {
            mergePrepared = 0;
            throw e;
        } catch (InternalError e) {
            mergePrepared = 0;
            throw MetadataChunk.mappedAccessFault(cow, e);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void releaseMerges() {
        lock.lock();
        try {
            mergePrepared = 0;
        } finally {
            lock.unlock();
        }
    }

    // ---- invalidation, usage, close ------------------------------------------------------------------

    @Override
    public void invalidate() {
        lock.lock();
        try {
            boolean wasValid = valid;
            valid = false;
            if (header == null || closed) {
                return;
            }
            long sizeBytes = cow.refreshSize();
            if (sizeBytes < layout.chunkBytes()) {
                // Truncated under us: the header page is past the end of the file (a store into
                // its mapping would be SIGBUS), and a file too short for a header never loads again.
                log.warn(
                        "{}: write header failed: the COW is {} bytes, shorter than its header chunk",
                        cow.name(),
                        sizeBytes);
                return;
            }
            if (!wasValid && DiskHeader.read(header.segment()).valid() == 0) {
                return;
            }
            DiskHeader.fresh(chunkSize.sectors(), false).writeChunk(header.segment());
            header.syncAll();
            cow.flush();
        } catch (IOException | RuntimeException e) {
            log.warn("{}: write header failed: {}", cow.name(), e.getMessage());
        } catch (InternalError e) {
            log.warn(
                    "{}: write header failed: {}",
                    cow.name(),
                    MetadataChunk.mappedAccessFault(cow, e).getMessage());
        } finally {
            lock.unlock();
        }
    }

    @Override
    public boolean isValid() {
        lock.lock();
        try {
            return valid;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public String failure() {
        lock.lock();
        try {
            return failure;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public StoreUsage usage() throws IOException {
        lock.lock();
        try {
            long sectors = chunkSize.sectors();
            long total = cow.refreshSize() >>> 9;
            if (!chunkSize.isSet()) {
                return new StoreUsage(0, total, 0); // a handover destination before its resume
            }
            if (layout != null && area != null) {
                noteSize(total << 9);
            }
            return new StoreUsage(nextFree * sectors, total, (listArea() + 2) * sectors);
        } finally {
            lock.unlock();
        }
    }

    /**
     * The area the kernel's {@code current_area} would be: the one after the last the list fills,
     * counting the entries staged or being written (the kernel writes a full area at once, so
     * deferred entries that fill areas count as if it had). Caller holds {@link #lock}.
     */
    private long listArea() {
        long unwritten = inRound + staged.size();
        return unwritten == 0 ? currentArea : currentArea + (currentCommitted + unwritten) / layout.exceptionsPerArea();
    }

    /**
     * Waits for rounds other threads run (the one the deferred limit handed to {@link #rounds}
     * writes its remaps rather than failing them), then unmaps; the thread of {@link #rounds} is
     * gone on return (unless this is called from it, by a commit callback).
     */
    @Override
    public void close() {
        boolean fromRound;
        lock.lock();
        try {
            if (closed) {
                return;
            }
            waitingForRound++;
            try {
                while (flushing && leader != Thread.currentThread()) {
                    roundEnded.awaitUninterruptibly(); // a half-done close is not a state
                }
            } finally {
                waitingForRound--;
            }
            if (closed) {
                return; // another close ran meanwhile
            }
            // Led by this thread (a commit callback closes), or on the thread of the rounds.
            fromRound = flushing || Thread.currentThread() == roundThread;
            closed = true;
            rounds.shutdown(); // no round was handed over and not yet started: nobody leads
            ahead.close();
            for (MetadataChunk c : new MetadataChunk[] {header, area}) {
                if (c != null) {
                    c.close();
                }
            }
            previousAreas.forEach(MetadataChunk::close);
            previousAreas.clear();
            header = null;
            area = null;
        } finally {
            lock.unlock();
        }
        if (!fromRound) {
            // Outside the lock: a failed round's callbacks take it after the round has ended.
            joinUninterruptibly(roundThread);
        }
    }

    private static void joinUninterruptibly(Thread thread) {
        if (thread == null) {
            return;
        }
        boolean interrupted = false;
        while (true) {
            try {
                thread.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void requireReady() {
        if (closed) {
            throw new IllegalStateException("the store of " + cow.name() + " is closed");
        }
        if (layout == null || area == null) {
            throw new IllegalStateException("the store of " + cow.name() + " has not been loaded");
        }
    }

    @Override
    public String toString() {
        return "PersistentExceptionStore[" + cow.name() + ", chunk " + chunkSize + "]";
    }
}
