package dmsnap.store.persistent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.PendingRemap;
import dmsnap.store.device.FileDevice;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A sparse COW (made with {@code truncate}) on a real file system: its blocks are allocated ahead
 * of the store's next free chunk, in extents, before the first writes reach them, without a byte
 * or the size of the COW changing; a file system without room for an extent leaves the store
 * valid and the writes allocating as they go. Reservations run on the calling thread here.
 */
class SparseCowTest {
    private static final long MIB = 1 << 20;
    private static final long CHUNK_SECTORS = 128;
    private static final long CHUNK_BYTES = CHUNK_SECTORS << 9;
    private static final Executor HERE = Runnable::run;

    @TempDir
    Path dir;

    private static PersistentExceptionStore newStore(FileDevice cow, Executor allocateAhead) throws IOException {
        PersistentExceptionStore store =
                new PersistentExceptionStore(cow, new ChunkSize(CHUNK_SECTORS), false, 512, allocateAhead);
        assertEquals(LoadResult.VALID, store.load((o, n) -> {}));
        return store;
    }

    /** A first write: a chunk prepared, its data written (as the copy would), its commit deferred. */
    private static PendingRemap firstWrite(PersistentExceptionStore store, FileDevice cow, long oldChunk, Arena arena)
            throws IOException {
        PendingRemap r = store.prepare(oldChunk);
        MemorySegment data = arena.allocate(CHUNK_BYTES, 4096).fill((byte) (oldChunk + 1));
        cow.write(r.newChunk() * CHUNK_BYTES, data);
        store.commitDeferred(r, true, (remap, ok) -> assertTrue(ok));
        return r;
    }

    @Test
    void theBlocksOfASparseCowAreAllocatedAheadOfItsFirstWritesAndItsBytesStayTheSame() throws Exception {
        assumeTrue(TempFiles.directIoUnavailable(dir) == null, "no O_DIRECT in " + dir);
        String noFallocate = TempFiles.fallocateUnavailable(dir);
        assumeTrue(noFallocate == null, noFallocate);
        long cowBytes = 64 * MIB; // extents of 4 MiB
        Path ahead = TempFiles.sparse(dir, "ahead.cow", cowBytes);
        Path asTheyGo = TempFiles.sparse(dir, "as-they-go.cow", cowBytes);
        int writes = 200;
        List<Long> leads = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            try (FileDevice cow = FileDevice.open(ahead);
                    PersistentExceptionStore store = newStore(cow, HERE)) {
                for (int i = 0; i < writes; i++) {
                    PendingRemap r = firstWrite(store, cow, 1000 + 7L * i, arena);
                    long end = (r.newChunk() + 1) * CHUNK_BYTES;
                    long lead = TempFiles.allocatedBytes(ahead) - end;
                    leads.add(lead);
                    assertTrue(
                            lead >= 2 * MIB - CHUNK_BYTES, "write " + i + ": only " + lead + " bytes allocated ahead");
                    assertTrue(
                            lead <= 6 * MIB + MIB,
                            "write " + i + ": " + lead + " bytes allocated ahead, > 1.5 extents");
                }
                store.sync(true);
            }
            try (FileDevice cow = FileDevice.open(asTheyGo);
                    PersistentExceptionStore store = newStore(cow, null)) {
                for (int i = 0; i < writes; i++) {
                    firstWrite(store, cow, 1000 + 7L * i, arena);
                }
                store.sync(true);
            }
        }
        assertEquals(cowBytes, Files.size(ahead), "the COW's size is the snapshot's: never grown");
        assertEquals(-1, Files.mismatch(ahead, asTheyGo), "allocating ahead changes no byte of the COW");
        assertTrue(
                TempFiles.allocatedBytes(ahead) < cowBytes / 2,
                "still sparse: " + TempFiles.allocatedBytes(ahead) + " bytes allocated");
        long written = (2 + writes + 1) * CHUNK_BYTES; // header, area 0, the chunks, area 1
        assertTrue(
                TempFiles.allocatedBytes(asTheyGo) <= written + MIB,
                "without allocating ahead: " + TempFiles.allocatedBytes(asTheyGo));
        System.out.println("allocate ahead: " + writes + " first writes into a 64 MiB sparse COW, allocated ahead of"
                + " each by " + leads.stream().mapToLong(Long::longValue).min().orElseThrow() / 1024 + " to "
                + leads.stream().mapToLong(Long::longValue).max().orElseThrow() / 1024
                + " KiB; the COW byte for byte as without");
    }

    @Test
    void aFileSystemWithoutRoomForAnExtentLeavesTheStoreValidAndTheWritesAllocatingAsTheyGo() throws Exception {
        Path mount = Files.createDirectories(dir.resolve("fs"));
        assumeTrue(
                run("mount", "-t", "tmpfs", "-o", "size=3m", "dmsnap-test", mount.toString()) == 0,
                "cannot mount a tmpfs (not root?)");
        try (Arena arena = Arena.ofConfined()) {
            byte[] mib = new byte[(int) MIB];
            try (OutputStream filler = Files.newOutputStream(mount.resolve("filler"))) {
                filler.write(mib);
                filler.write(mib); // about 1 MiB left: room for writes, not for a 2 MiB extent
            }
            Path cowFile = TempFiles.sparse(mount, "snap.cow", 32 * MIB); // extents of 2 MiB
            List<Long> committed = new ArrayList<>();
            try (FileDevice cow = FileDevice.open(cowFile, FileDevice.Option.BUFFERED);
                    PersistentExceptionStore store = newStore(cow, HERE)) {
                for (int i = 0; i < 8; i++) {
                    PendingRemap r = firstWrite(store, cow, 100 + i, arena);
                    committed.add(r.oldChunk());
                }
                store.sync(true);
                assertTrue(store.isValid(), "a failed allocation ahead invalidates nothing");
                assertNull(store.failure());
                assertTrue(
                        TempFiles.allocatedBytes(cowFile) <= 10 * CHUNK_BYTES,
                        "no extent was reserved: " + TempFiles.allocatedBytes(cowFile));
                ErrnoException full = assertThrows(ErrnoException.class, () -> cow.allocate(10 * CHUNK_BYTES, 2 * MIB));
                assertEquals(Errno.ENOSPC, full.errno(), "the extent did not fit");
            }
            List<Long> loaded = new ArrayList<>();
            try (FileDevice cow = FileDevice.open(cowFile, FileDevice.Option.BUFFERED);
                    PersistentExceptionStore store =
                            new PersistentExceptionStore(cow, new ChunkSize(CHUNK_SECTORS), false, 512, null)) {
                assertEquals(LoadResult.VALID, store.load((o, n) -> loaded.add(o)));
            }
            assertEquals(committed, loaded);
        } finally {
            run("umount", "-l", mount.toString());
        }
    }

    private static int run(String... command) throws IOException, InterruptedException {
        return new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start()
                .waitFor();
    }
}
