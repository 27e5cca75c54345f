package dmsnap.store;

import java.io.IOException;

/** Receives the stored remaps in on-disk order while a store loads. */
@FunctionalInterface
public interface RemapSink {
    void remap(long oldChunk, long newChunk) throws IOException;
}
