package dmsnap.store;

import java.io.IOException;

/** Receives the stored remaps in on-disk order while a store loads. */
@FunctionalInterface
public interface RemapSink {
    void remap(long oldChunk, long newChunk) throws IOException;

    /** After the last remap of a list read to its end (not after a load that failed). */
    default void endOfList() throws IOException {}
}
