package dmsnap.store.device;

import java.lang.foreign.Arena;

/**
 * The shared arenas a device's metadata maps live in, a group of them per arena. Closing a
 * shared arena stops every Java thread for a handshake, which in a daemon with a hundred
 * threads costs a good part of a millisecond; a COW of 4 KiB chunks maps and unmaps an
 * exception area every 256 exceptions (every 1 MiB of first writes). A group takes maps until
 * {@value #GROUP_BYTES} bytes are mapped in it, and its arena closes (unmapping them all) when
 * the last of them is closed, or when the device closes and nothing in it is still in use.
 */
final class MapArenas {
    /** Bytes mapped per group at most: what a group whose other maps are done keeps mapped for one long-lived map. */
    static final long GROUP_BYTES = 256 << 10;

    private Group filling;
    private boolean closed;

    /** A group for a map of {@code bytes}; {@link Group#release} it when the map is closed. */
    synchronized Group take(long bytes) {
        if (closed) {
            throw new IllegalStateException("the device is closed");
        }
        if (filling == null || filling.mappedBytes > 0 && filling.mappedBytes + bytes > GROUP_BYTES) {
            if (filling != null) {
                filling.full = true;
                filling.closeIfDone();
            }
            filling = new Group();
        }
        filling.mappedBytes += bytes;
        filling.live++;
        return filling;
    }

    /** No more maps: the group being filled closes as soon as its maps are closed. */
    synchronized void close() {
        closed = true;
        if (filling != null) {
            filling.full = true;
            filling.closeIfDone();
            filling = null;
        }
    }

    final class Group {
        final Arena arena = Arena.ofShared();
        private long mappedBytes;
        private int live;
        private boolean full;

        void release() {
            synchronized (MapArenas.this) {
                live--;
                closeIfDone();
            }
        }

        private void closeIfDone() {
            if (full && live == 0 && arena.scope().isAlive()) {
                arena.close();
            }
        }
    }
}
