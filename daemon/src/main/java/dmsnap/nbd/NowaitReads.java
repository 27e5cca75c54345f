package dmsnap.nbd;

/**
 * Whether a connection's reader tries a READ from the page cache ({@link NbdExport#readIfCached})
 * before it hands the read to an I/O thread: a served try saves the two thread hand-offs (reader
 * to I/O thread to writer) that cost a cached 4 KiB read more CPU than the read itself (issue
 * 18); a failed one costs one {@code preadv2} that returns EAGAIN.
 *
 * <p>A workload whose reads miss the cache would pay that failed call on every request, so after
 * {@value #MISSES_TO_BACK_OFF} misses in a row the reader stops trying for the next {@value
 * #SKIPPED_AFTER_MISSES} reads, then tries again: a cold workload pays at most one failed call
 * per 33 reads (8 of 264), and a warm one that misses 8 in a row by chance loses the saving on
 * 256 reads only. Reads larger than {@value #MAX_BYTES} bytes are never tried: copying them on
 * the reader would hold up the requests behind them, which the I/O threads serve in parallel.
 *
 * <p>The reader's own state: used by its thread only, no synchronisation, nothing allocated.
 */
final class NowaitReads {
    /** The largest read tried: 128 KiB, a few microseconds of copying from the page cache. */
    static final long MAX_BYTES = 128 << 10;
    /** Misses in a row after which the reader stops trying for a while. */
    static final int MISSES_TO_BACK_OFF = 8;
    /** Reads handed off without a try after {@link #MISSES_TO_BACK_OFF} misses in a row. */
    static final int SKIPPED_AFTER_MISSES = 256;

    private int missesInRow;
    private int skipping;

    /** Whether to try a read of {@code lengthBytes} from the page cache; a read not tried counts down a back-off. */
    boolean shouldTry(long lengthBytes) {
        if (lengthBytes > MAX_BYTES) {
            return false;
        }
        if (skipping > 0) {
            skipping--;
            return false;
        }
        return true;
    }

    /** A try was answered (served, or failed as the read would have). */
    void served() {
        missesInRow = 0;
    }

    /** A try would have waited: the read is handed off. */
    void missed() {
        if (++missesInRow == MISSES_TO_BACK_OFF) {
            missesInRow = 0;
            skipping = SKIPPED_AFTER_MISSES;
        }
    }
}
