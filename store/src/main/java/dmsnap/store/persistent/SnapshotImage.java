package dmsnap.store.persistent;

import dmsnap.store.ChunkSize;
import dmsnap.store.device.Device;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.function.LongConsumer;

/**
 * Writes the snapshot view of an origin and a set of remaps to a device or file: chunk c comes
 * from COW chunk remaps.get(c) when there is one, else from the origin. Origin runs are read up
 * to 1 MiB at a time; the last chunk of an origin whose size is not a chunk multiple is short,
 * as the kernel's copy is. Returns the sha256 of what it wrote.
 */
public final class SnapshotImage {
    private static final long RUN_BYTES = 1 << 20;

    private SnapshotImage() {}

    /**
     * @param progress told the number of bytes written so far, after every run
     * @return the sha256 of the view, hex
     */
    public static String write(
            Device origin, Device cow, ChunkSize chunk, Map<Long, Long> remaps, Device out, LongConsumer progress)
            throws IOException {
        long total = origin.sizeBytes();
        long chunkBytes = chunk.bytes();
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        long runLimit = Math.max(RUN_BYTES, chunkBytes);
        int align = Math.max(
                4096,
                Math.max(
                        origin.bufferAlignmentBytes(),
                        Math.max(cow.bufferAlignmentBytes(), out.bufferAlignmentBytes())));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(runLimit, align);
            long at = 0;
            while (at < total) {
                long c = at / chunkBytes;
                Long mapped = remaps.get(c);
                long length;
                if (mapped != null) {
                    length = Math.min(chunkBytes, total - at);
                    cow.read(mapped * chunkBytes, buffer.asSlice(0, length));
                } else {
                    // A run of origin chunks without exceptions.
                    long end = Math.min(total, at + runLimit);
                    long next = at + chunkBytes - at % chunkBytes;
                    while (next < end && !remaps.containsKey(next / chunkBytes)) {
                        next += chunkBytes;
                    }
                    length = Math.min(next, end) - at;
                    origin.read(at, buffer.asSlice(0, length));
                }
                MemorySegment piece = buffer.asSlice(0, length);
                out.write(at, piece);
                digest.update(piece.asByteBuffer());
                at += length;
                progress.accept(at);
            }
        }
        out.flush();
        return HexFormat.of().formatHex(digest.digest());
    }
}
