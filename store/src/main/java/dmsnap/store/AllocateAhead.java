package dmsnap.store;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reserves a sparse COW file's blocks ahead of its store's next free chunk ({@link
 * Device#allocate}), so that first writes into a COW made with {@code truncate} do not allocate
 * the file system's blocks one chunk at a time (on ext4 each such write takes the inode lock
 * exclusively and dirties the journal that the next flush must commit). The kernel's COW is an LV,
 * thick from the start: this makes a sparse file behave like one, without changing a byte of it
 * (reserved blocks read as zeroes, as the holes did) nor its size.
 *
 * <p>Extents of 1/16 of the COW, between 1 and 64 MiB ({@link #extentBytes}): a call costs about
 * the same whatever its length (a journal transaction, the inode lock, waiting for the file's
 * direct I/O in flight), so extents are large; the fraction bounds what a sparse COW holds unused
 * beyond its store's chunks to 1.5 extents (the next extent is asked for when less than half of
 * one is left), and the cap bounds it on a big COW while at 1 GiB/s of first writes it is still
 * only one call per 64 ms.
 *
 * <p>Off the write path: the store says which chunk it handed out ({@link #allocated}), which only
 * compares two numbers unless the next extent is due; the reservation runs on {@code executor},
 * one at a time per COW. A failure never invalidates anything: with ENOSPC the first writes
 * allocate as they go (and meet ENOSPC themselves, as without this, when there is really no room),
 * and the next extent is tried when it is due; a file system without fallocate (EOPNOTSUPP) or any
 * other error turns it off for this COW, with a debug line. A device with nothing to reserve (a
 * block device, memory, a file without holes) is asked again only once the store goes past its
 * present end (the COW grew).
 */
public final class AllocateAhead {
    private static final Logger log = LoggerFactory.getLogger(AllocateAhead.class);

    static final long MIN_EXTENT_BYTES = 1 << 20;
    static final long MAX_EXTENT_BYTES = 64 << 20;

    /** The daemon's reservations: two threads shared by every COW, gone when idle. */
    public static final Executor SHARED = sharedExecutor();

    private final Device device;
    private final Executor executor;

    /** {@link #allocated} does nothing below this end: the next extent is not due yet. */
    private volatile long triggerBytes;

    /** Guarded by this. The offset of the store's last chunk handed out, as last told. */
    private long usedBytes;
    /** Guarded by this. Where the reserved range ends (everything below is reserved or used). */
    private long frontierBytes;

    private boolean running;
    private boolean stopped;
    private boolean noRoomSaid;

    /** Reservations for {@code device} on {@code executor} (null: none at all). */
    public AllocateAhead(Device device, Executor executor) {
        this.device = device;
        this.executor = executor;
        this.triggerBytes = executor == null ? Long.MAX_VALUE : 0;
    }

    /** The extent reserved at a time on a COW of {@code sizeBytes}: 1/16 of it, between 1 and 64 MiB. */
    static long extentBytes(long sizeBytes) {
        long sixteenth = sizeBytes / 16 / MIN_EXTENT_BYTES * MIN_EXTENT_BYTES;
        return Math.clamp(sixteenth, MIN_EXTENT_BYTES, MAX_EXTENT_BYTES);
    }

    /**
     * The store handed out the chunk at {@code chunkOffsetBytes} (its first data write comes
     * next; the chunks below are in use): reserves the next extent from there when less than half
     * of one is reserved ahead. Never blocks on I/O, never throws.
     */
    public void allocated(long chunkOffsetBytes) {
        if (chunkOffsetBytes < triggerBytes) {
            return;
        }
        synchronized (this) {
            usedBytes = Math.max(usedBytes, chunkOffsetBytes);
            if (running || stopped) {
                return;
            }
            running = true;
        }
        try {
            executor.execute(this::reserve);
        } catch (RejectedExecutionException e) {
            synchronized (this) {
                running = false;
            }
        }
    }

    /** No reservation starts after this (the store is closed). */
    public synchronized void close() {
        stopped = true;
        triggerBytes = Long.MAX_VALUE;
    }

    /** Where the reserved range ends now (tests). */
    public synchronized long frontierBytes() {
        return frontierBytes;
    }

    /** Reserves extents until half of one lies ahead of the store; one run at a time. */
    private void reserve() {
        while (true) {
            long from;
            long length;
            synchronized (this) {
                long size = device.sizeBytes();
                long extent = extentBytes(size);
                frontierBytes = Math.max(frontierBytes, usedBytes);
                if (stopped || frontierBytes >= size || frontierBytes - usedBytes >= extent / 2) {
                    // Due again when less than half an extent lies ahead of the store, or, at the
                    // end of the COW, when it grows and the store goes past the old end.
                    triggerBytes = stopped
                            ? Long.MAX_VALUE
                            : frontierBytes >= size ? size + 1 : frontierBytes - extent / 2 + 1;
                    running = false;
                    return;
                }
                from = frontierBytes;
                length = Math.min(extent, size - from);
            }
            Outcome outcome;
            try {
                outcome = device.allocate(from, length) ? Outcome.RESERVED : Outcome.NOTHING_TO_RESERVE;
            } catch (ErrnoException e) {
                if (e.errno() != Errno.ENOSPC) {
                    stop(e.errno() == Errno.EOPNOTSUPP ? "its file system cannot allocate ahead" : e.getMessage());
                    return;
                }
                noRoom(e);
                outcome = Outcome.NO_ROOM;
            } catch (IOException | RuntimeException e) {
                stop(e.getMessage()); // a closed device, an I/O error: the writes will say
                return;
            }
            synchronized (this) {
                if (outcome == Outcome.NOTHING_TO_RESERVE) {
                    // Asked again when the store goes past the present end (the COW grew).
                    triggerBytes = device.sizeBytes() + 1;
                    running = false;
                    return;
                }
                // Without room the extent is skipped: the next one is tried when it is due.
                frontierBytes = Math.max(frontierBytes, from + length);
                if (outcome == Outcome.RESERVED) {
                    noRoomSaid = false; // a later ENOSPC is said again
                }
            }
        }
    }

    private enum Outcome {
        RESERVED,
        NO_ROOM,
        NOTHING_TO_RESERVE
    }

    private void noRoom(ErrnoException e) {
        boolean say;
        synchronized (this) {
            say = !noRoomSaid;
            noRoomSaid = true;
        }
        if (say) {
            log.debug(
                    "{}: no room to allocate ahead, first writes allocate as they go: {}",
                    device.name(),
                    e.getMessage());
        }
    }

    private void stop(String why) {
        synchronized (this) {
            stopped = true;
            triggerBytes = Long.MAX_VALUE;
            running = false;
        }
        log.debug("{}: not allocating ahead: {}", device.name(), why);
    }

    private static Executor sharedExecutor() {
        ThreadPoolExecutor pool = new ThreadPoolExecutor(2, 2, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "dmsnap-allocate-ahead");
            t.setDaemon(true);
            return t;
        });
        pool.allowCoreThreadTimeOut(true);
        return pool;
    }
}
