package dmsnap.store.persistent;

import dmsnap.store.persistent.CowInspector.Problem;
import java.io.IOException;
import java.util.HashSet;
import java.util.Set;

/**
 * Walks the exception list of a persistent COW as the kernel's {@code read_exceptions} does:
 * areas 0, 1, ... in order, each entry in order, up to the first entry whose new chunk is 0.
 * The one walk behind both the table load ({@link PersistentExceptionStore#load}) and {@code
 * dmsnap cow check|dump} ({@link CowInspector}), so that both find the same damage and word it
 * alike ({@link CowDamage}): an area past the end of the COW (no terminator), a new chunk past
 * the end, in metadata or used twice, an old chunk negative as a signed number, non-zero entries
 * after the terminator. The kernel trusts what it reads; dmsnap refuses what it could not serve
 * correctly. What the visitor does with a damage decides whether the walk goes on: the load
 * throws, cow check notes it.
 *
 * @param <A> how the caller holds an area it read (a mapping, or a buffer)
 */
final class AreaWalker<A extends AreaWalker.Area> {
    /** One area as read from the COW; closed by the walker unless the list ends in it. */
    interface Area extends AutoCloseable {
        AreaEntries entries();

        @Override
        void close();
    }

    /** Reads area {@code area}, whose chunk starts at byte {@code offsetBytes} of the COW. */
    @FunctionalInterface
    interface Source<A extends Area> {
        A open(long area, long offsetBytes) throws IOException;
    }

    /** Told of every entry before the terminator, in on-disk order, and of every damage. */
    interface Visitor {
        /** An entry before the terminator (after any damage of its own was reported). */
        void entry(long area, int index, long byteOffset, long oldChunk, long newChunk) throws IOException;

        /** A damage: throw to stop the walk, or return to go on. */
        void damage(Problem problem) throws IOException;

        /** Area {@code area} (at chunk {@code chunk}) was read: {@code entries} entries before its terminator, or all. */
        default void areaRead(long area, long chunk, int entries) {}
    }

    /**
     * Where the list ends.
     *
     * @param area      the area holding the terminator
     * @param entries   the entries before it in that area
     * @param staleTail whether a non-zero entry follows the terminator in that area
     * @param opened    that area, still open: the caller's to close
     */
    record End<A extends Area>(long area, int entries, boolean staleTail, A opened) {}

    private final PersistentLayout layout;
    private final long cowChunks;
    private final Source<A> source;

    AreaWalker(PersistentLayout layout, long cowChunks, Source<A> source) {
        this.layout = layout;
        this.cowChunks = cowChunks;
        this.source = source;
    }

    /** Walks the list; null when it has no terminator (after that damage was reported). */
    End<A> walk(Visitor visitor) throws IOException {
        int epa = (int) layout.exceptionsPerArea();
        long lastNew = -1;
        Set<Long> seenNew = null;
        for (long k = 0; ; k++) {
            long location = layout.areaLocation(k);
            long areaOffset = layout.chunkOffsetBytes(location);
            if (location >= cowChunks) {
                visitor.damage(CowDamage.noTerminator(k, location, areaOffset, cowChunks));
                return null;
            }
            A area = source.open(k, areaOffset);
            boolean keep = false;
            try {
                AreaEntries entries = area.entries();
                for (int i = 0; i < epa; i++) {
                    long newChunk = entries.newChunk(i);
                    if (newChunk == 0) {
                        long stale = entries.firstNonZero(i + 1);
                        if (stale >= 0) {
                            visitor.damage(CowDamage.staleAfterTerminator(
                                    k, (int) stale, areaOffset + AreaEntries.offsetBytes(stale), i));
                        }
                        visitor.areaRead(k, location, i);
                        keep = true;
                        return new End<>(k, i, stale >= 0, area);
                    }
                    long oldChunk = entries.oldChunk(i);
                    long at = areaOffset + AreaEntries.offsetBytes(i);
                    // The load's order of checks, which decides what a load refusing at the first
                    // damage says of an entry with several.
                    boolean dataChunk = false;
                    if (newChunk < 0 || newChunk >= cowChunks) {
                        visitor.damage(CowDamage.newChunkPastEnd(k, i, at, newChunk, cowChunks));
                    } else if (layout.isMetadataChunk(newChunk)) {
                        visitor.damage(CowDamage.newChunkInMetadata(k, i, at, newChunk));
                    } else {
                        dataChunk = true;
                    }
                    if (oldChunk < 0) {
                        visitor.damage(CowDamage.oldChunkOutOfRange(k, i, at, oldChunk));
                    }
                    if (dataChunk) {
                        // New chunks normally ascend; only when they do not is a set needed to find reuse.
                        if (newChunk <= lastNew && seenNew == null) {
                            seenNew = new HashSet<>();
                            addNewChunksBefore(seenNew, k, i);
                        }
                        if (seenNew != null && !seenNew.add(newChunk)) {
                            visitor.damage(CowDamage.newChunkUsedTwice(k, i, at, newChunk));
                        }
                        lastNew = Math.max(lastNew, newChunk);
                    }
                    visitor.entry(k, i, at, oldChunk, newChunk);
                }
                visitor.areaRead(k, location, epa);
            } finally {
                if (!keep) {
                    area.close();
                }
            }
        }
    }

    /** Adds the new chunk of every entry before (area {@code k}, entry {@code i}); the areas before k are full. */
    private void addNewChunksBefore(Set<Long> seen, long k, int i) throws IOException {
        long epa = layout.exceptionsPerArea();
        for (long a = 0; a <= k; a++) {
            try (A area = source.open(a, layout.chunkOffsetBytes(layout.areaLocation(a)))) {
                AreaEntries entries = area.entries();
                long end = a < k ? epa : i;
                for (long e = 0; e < end; e++) {
                    seen.add(entries.newChunk(e));
                }
            }
        }
    }
}
