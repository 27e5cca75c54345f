package dmsnap.store;

/**
 * An exception between prepare and commit: origin chunk {@code oldChunk} is being copied to COW
 * chunk {@code newChunk}. {@code sequence} is its allocation order; the store commits remaps in
 * that order whatever order their copies finish in.
 */
public record PendingRemap(long oldChunk, long newChunk, long sequence) {}
