package dmsnap.store.device;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A writable view of a small range of a device for metadata (a COW's header and exception
 * areas): stores into {@link #segment()} reach the device when {@link #sync} returns, and are
 * durable after the next {@link Device#flush()}. They may also reach the device earlier (a real
 * mmap is written back whenever the kernel likes), so a caller stores only what may become
 * visible at any time. Data chunks never go through a map.
 *
 * <p>One owner; not for concurrent use with {@link #close()}.
 */
public interface MetadataMap extends AutoCloseable {

    /** The mapped bytes, from the device offset the map was made at. */
    MemorySegment segment();

    /** Writes {@code [offset, offset + length)} of the map to the device (msync), not yet durable. */
    void sync(long offsetBytes, long lengthBytes) throws IOException;

    /**
     * Whether {@link #sync} itself makes the range durable, so that no device flush is needed for
     * it. A real shared mapping synced with {@code msync(MS_SYNC)} is: on Linux that is an
     * {@code fdatasync} of the range, the device cache flush included.
     */
    default boolean syncIsDurable() {
        return false;
    }

    /**
     * Whether the device's next {@link Device#flush()} makes stores durable without a
     * {@link #sync} first: a real shared mapping of the file that flush is an {@code fdatasync}
     * of (it writes back the file's dirty pages, mapped ones included).
     */
    default boolean flushWritesBack() {
        return false;
    }

    /**
     * Starts reading the mapped range in the background when a first touch would wait for the
     * device (a real mapping of pages not in the page cache); a hint, nothing by default.
     */
    default void prefetch() {}

    /** Unmaps; stores not yet synced may or may not reach the device. Idempotent. */
    @Override
    void close();
}
