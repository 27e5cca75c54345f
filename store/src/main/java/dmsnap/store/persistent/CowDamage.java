package dmsnap.store.persistent;

import dmsnap.store.ExceptionTable;
import dmsnap.store.persistent.CowInspector.Problem;

/**
 * What can be wrong with a persistent COW, worded once: the table load refuses a COW with the
 * sentence of the first damage it meets ({@link Problem#message()} becomes the {@link
 * dmsnap.store.CorruptStoreException}'s message), and {@code dmsnap cow check} prints the same
 * sentences for every damage it finds. An entry is located as "exception I of area K (byte B)",
 * B its offset on the COW.
 */
public enum CowDamage {
    /** The header: magic, version, chunk size, or a COW too small for it. */
    HEADER(true),
    /** An area that should follow a full one lies past the end of the COW. */
    NO_TERMINATOR(true),
    /** A new chunk at or past the end of the COW. */
    NEW_CHUNK_PAST_END(true),
    /** A new chunk that is the header or an area. */
    NEW_CHUNK_IN_METADATA(true),
    /** A new chunk an earlier exception points at too. */
    NEW_CHUNK_USED_TWICE(true),
    /** An old chunk that is negative as a signed number. */
    OLD_CHUNK_OUT_OF_RANGE(true),
    /** Chunks beyond what the exception table holds (refused by its loading sink). */
    BEYOND_EXCEPTION_TABLE(true),
    /** An origin chunk with a second exception (refused by the exception table's loading sink). */
    OLD_CHUNK_TWICE(true),
    /** An old chunk past the end of the origin (only cow check knows the origin; the kernel loads it). */
    OLD_CHUNK_PAST_ORIGIN(false),
    /** A non-zero entry after the terminator: ignored by the kernel, and zeroed before the next append. */
    STALE_AFTER_TERMINATOR(false);

    private final boolean refusesLoad;

    CowDamage(boolean refusesLoad) {
        this.refusesLoad = refusesLoad;
    }

    /** Whether a table load refuses a COW with this damage (the others it loads as the kernel does). */
    public boolean refusesLoad() {
        return refusesLoad;
    }

    // ---- the sentences -----------------------------------------------------------------------------

    static Problem noTerminator(long area, long chunk, long byteOffset, long cowChunks) {
        return new Problem(
                NO_TERMINATOR,
                area,
                -1,
                byteOffset,
                "area " + area + " (chunk " + chunk + ") lies beyond the end of the COW (" + cowChunks
                        + " chunks): the exception list has no terminator");
    }

    static Problem newChunkPastEnd(long area, int entry, long byteOffset, long newChunk, long cowChunks) {
        return located(
                NEW_CHUNK_PAST_END,
                area,
                entry,
                byteOffset,
                " points at COW chunk " + Long.toUnsignedString(newChunk) + ", past the end of the COW (" + cowChunks
                        + " chunks)");
    }

    static Problem newChunkInMetadata(long area, int entry, long byteOffset, long newChunk) {
        return located(
                NEW_CHUNK_IN_METADATA,
                area,
                entry,
                byteOffset,
                " points at COW chunk " + newChunk + ", which holds metadata");
    }

    static Problem newChunkUsedTwice(long area, int entry, long byteOffset, long newChunk) {
        return located(
                NEW_CHUNK_USED_TWICE,
                area,
                entry,
                byteOffset,
                " points at COW chunk " + newChunk + ", which an earlier exception uses too");
    }

    static Problem oldChunkOutOfRange(long area, int entry, long byteOffset, long oldChunk) {
        return located(
                OLD_CHUNK_OUT_OF_RANGE,
                area,
                entry,
                byteOffset,
                " names origin chunk " + Long.toUnsignedString(oldChunk) + ", out of range");
    }

    static Problem beyondExceptionTable(long area, int entry, long byteOffset, long oldChunk, long newChunk) {
        return located(
                BEYOND_EXCEPTION_TABLE,
                area,
                entry,
                byteOffset,
                ": " + ExceptionTable.beyondLimitsMessage(oldChunk, newChunk));
    }

    static Problem oldChunkTwice(long area, int entry, long byteOffset, long oldChunk, long newChunk, long firstNew) {
        return located(
                OLD_CHUNK_TWICE,
                area,
                entry,
                byteOffset,
                ": " + ExceptionTable.secondExceptionMessage(oldChunk, newChunk, firstNew));
    }

    static Problem oldChunkPastOrigin(long area, int entry, long byteOffset, long oldChunk, long originChunks) {
        return located(
                OLD_CHUNK_PAST_ORIGIN,
                area,
                entry,
                byteOffset,
                " names origin chunk " + oldChunk + ", past the end of the origin (" + originChunks + " chunks)");
    }

    static Problem staleAfterTerminator(long area, int entry, long byteOffset, int terminator) {
        return located(
                STALE_AFTER_TERMINATOR,
                area,
                entry,
                byteOffset,
                " follows the terminator (exception " + terminator
                        + ") but is not zero: ignored by the kernel, but a torn or stale write");
    }

    /** {@code what} ("the header chunk", ...) does not fit in the COW (the table load's sentence). */
    static String tooSmallFor(String cowName, long sizeBytes, String what, long chunkSectors) {
        return "the COW " + cowName + " (" + sizeBytes + " bytes) is too small for " + what + " with chunk size "
                + chunkSectors;
    }

    /** Not even the header's 16 bytes (one logical block) fit (the table load's sentence). */
    static String tooSmallForHeader(String cowName, long sizeBytes) {
        return "the COW " + cowName + " is too small to hold a header (" + sizeBytes + " bytes)";
    }

    private static Problem located(CowDamage kind, long area, int entry, long byteOffset, String what) {
        return new Problem(
                kind,
                area,
                entry,
                byteOffset,
                "exception " + entry + " of area " + area + " (byte " + byteOffset + ")" + what);
    }
}
