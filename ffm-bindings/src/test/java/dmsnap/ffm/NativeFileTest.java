package dmsnap.ffm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeFileTest {
    @TempDir
    Path dir;

    private Path sparse(String name, long bytes) throws IOException {
        Path p = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return p;
    }

    /** {@code p} opened read-write with O_DIRECT; the test is skipped where the file system has none. */
    private NativeFile openDirectOrSkip(Path p) throws ErrnoException {
        try {
            return NativeFile.open(p, OpenFlag.READ_WRITE, OpenFlag.DIRECT);
        } catch (ErrnoException e) {
            assumeTrue(false, "O_DIRECT unsupported in " + dir + ": " + e.getMessage());
            throw e;
        }
    }

    @Test
    void createWriteReadRoundTrip() throws IOException {
        Path p = dir.resolve("new.img");
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE, OpenFlag.CREATE, OpenFlag.EXCLUSIVE);
                Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocateFrom("hello, dmsnap");
            f.write(1000, data);
            f.fdatasync();
            f.fsync();
            MemorySegment back = arena.allocate(data.byteSize());
            assertEquals(data.byteSize(), f.read(1000, back));
            assertEquals("hello, dmsnap", back.getString(0));
            assertEquals(1000 + data.byteSize(), f.stat().sizeBytes());
            assertEquals(FileType.REGULAR_FILE, f.stat().type());
        }
        assertEquals("hello, dmsnap", new String(Files.readAllBytes(p), 1000, 13));
    }

    @Test
    void createExclusiveOnAnExistingFileFailsWithEexist() throws IOException {
        Path p = sparse("exists.img", 4096);
        ErrnoException e = assertThrows(
                ErrnoException.class,
                () -> NativeFile.open(p, OpenFlag.READ_WRITE, OpenFlag.CREATE, OpenFlag.EXCLUSIVE));
        assertEquals(Errno.EEXIST, e.errno());
        assertEquals("open(path=" + p + ") failed: EEXIST (File exists)", e.getMessage());
        assertEquals("open", e.syscall());
        assertEquals(p, e.path());
    }

    @Test
    void readIfCachedServesWhatThePageCacheHoldsAndWouldBlockOtherwise() throws IOException {
        Path p = sparse("nowait.img", 1 << 20);
        try (NativeFile buffered = NativeFile.open(p, OpenFlag.READ_WRITE);
                Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(8192);
            data.fill((byte) 0x5a);
            buffered.write(65536, data); // its pages are in the page cache now (dirty)
            MemorySegment back = arena.allocate(8192);
            long n = buffered.readIfCached(65536, back);
            assumeTrue(n != NativeFile.WOULD_BLOCK, "this file system has no nowait buffered reads");
            assertEquals(8192, n);
            assertEquals(-1, back.mismatch(data));
            // Across the end: a short read is "would block"; the caller's normal read decides.
            assertEquals(NativeFile.WOULD_BLOCK, buffered.readIfCached((1 << 20) - 4096, back));
            assertEquals(NativeFile.WOULD_BLOCK, buffered.readIfCached(1 << 20, back.asSlice(0, 4096)));
            assertEquals(8192, buffered.readIfCached(65536, back), "a failed try changes nothing");
        }
    }

    @Test
    void readIfCachedNeverTriesOnAnODirectFile() throws IOException {
        Path p = sparse("direct-nowait.img", 1 << 20);
        try (NativeFile direct = openDirectOrSkip(p);
                NativeFile buffered = NativeFile.open(p, OpenFlag.READ_ONLY);
                Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(4096, 4096);
            assertEquals(4096, buffered.read(0, data)); // cached now, through the other descriptor
            assertEquals(NativeFile.WOULD_BLOCK, direct.readIfCached(0, data));
        }
    }

    @Test
    void readStopsShortOnlyAtEndOfFile() throws IOException {
        Path p = sparse("short.img", 6000);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY);
                Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(8192);
            assertEquals(6000, f.read(0, buf));
            assertEquals(0, f.read(6000, buf));
        }
    }

    @Test
    void directIoOnExt4NeedsAlignmentAndSaysWhich() throws IOException {
        Path p = sparse("direct.img", 1 << 20);
        try (NativeFile f = openDirectOrSkip(p);
                Arena arena = Arena.ofConfined()) {
            int align = f.directOffsetAlignment();
            assertTrue(align >= 512 && Integer.bitCount(align) == 1, "alignment " + align);
            MemorySegment buf = arena.allocate(8192, 4096);
            buf.fill((byte) 7);
            f.write(align, buf.asSlice(0, align));
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> f.write(100, buf.asSlice(0, align)));
            assertEquals(
                    "pwrite(path=" + p + ", offset=100, length=" + align
                            + "): O_DIRECT needs offset and length aligned to "
                            + align + " bytes and the buffer address to " + f.directMemoryAlignment()
                            + " bytes (buffer address % " + f.directMemoryAlignment() + " = 0)",
                    e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> f.read(0, buf.asSlice(8, align)));
            assertThrows(IllegalArgumentException.class, () -> f.read(0, buf.asSlice(0, 100)));
            MemorySegment back = arena.allocate(align, 4096);
            f.read(align, back);
            assertEquals(7, back.get(JAVA_BYTE, align - 1));
        }
    }

    @Test
    void dsyncWritesLand() throws IOException {
        Path p = sparse("dsync.img", 8192);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE, OpenFlag.DSYNC);
                Arena arena = Arena.ofConfined()) {
            assertTrue(f.flags().contains(OpenFlag.DSYNC));
            f.write(4096, arena.allocate(4096).fill((byte) 3));
        }
        assertEquals(3, Files.readAllBytes(p)[8191]);
    }

    @Test
    void heapSegmentsAreRefused() throws IOException {
        Path p = sparse("heap.img", 4096);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            assertThrows(IllegalArgumentException.class, () -> f.read(0, MemorySegment.ofArray(new byte[16])));
        }
    }

    @Test
    void fallocatePunchAndZeroRange() throws IOException {
        Path p = dir.resolve("falloc.img");
        Files.write(p, new byte[64 << 10]);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE);
                Arena arena = Arena.ofConfined()) {
            MemorySegment ones = arena.allocate(64 << 10);
            ones.fill((byte) 1);
            f.write(0, ones);
            f.fallocate(Fallocate.PUNCH_HOLE, 4096, 4096);
            f.fallocate(Fallocate.ZERO_RANGE, 16384, 4096);
            f.fallocate(Fallocate.KEEP_SIZE, 1 << 20, 4096);
            MemorySegment back = arena.allocate(64 << 10);
            f.read(0, back);
            assertEquals(1, back.get(JAVA_BYTE, 4095));
            assertEquals(0, back.get(JAVA_BYTE, 4096));
            assertEquals(0, back.get(JAVA_BYTE, 8191));
            assertEquals(1, back.get(JAVA_BYTE, 8192));
            assertEquals(0, back.get(JAVA_BYTE, 16384));
            assertEquals(1, back.get(JAVA_BYTE, 20480));
            assertEquals(64 << 10, f.stat().sizeBytes(), "KEEP_SIZE keeps the size");
        }
        try (NativeFile ro = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            ErrnoException e = assertThrows(ErrnoException.class, () -> ro.fallocate(Fallocate.PUNCH_HOLE, 0, 4096));
            assertEquals(
                    "fallocate(path=" + p + ", offset=0, length=4096) failed: EBADF (Bad file descriptor)",
                    e.getMessage());
        }
    }

    @Test
    void statSaysHowManyBytesTheFileSystemAllocated() throws IOException {
        Path p = dir.resolve("sparse.img");
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE, OpenFlag.CREATE)) {
            f.truncate(1 << 20);
            assertEquals(0, f.stat().allocatedBytes(), "a truncated file is a hole");
            try {
                f.fallocate(Fallocate.KEEP_SIZE, 0, 256 << 10);
            } catch (ErrnoException e) {
                assumeTrue(e.errno() != Errno.EOPNOTSUPP, "no fallocate on " + dir);
                throw e;
            }
            assertTrue(f.stat().allocatedBytes() >= 256 << 10, "fallocate allocates");
            assertTrue(f.stat().allocatedBytes() < 1 << 20, "and only its range");
        }
    }

    @Test
    void noFollowRefusesASymbolicLinkAndLeavesItsTargetAlone() throws IOException {
        Path target = sparse("target.img", 4096);
        Path link = Files.createSymbolicLink(dir.resolve("link.img"), target);
        ErrnoException e = assertThrows(
                ErrnoException.class,
                () -> NativeFile.open(link, OpenFlag.READ_WRITE, OpenFlag.CREATE, OpenFlag.NO_FOLLOW));
        assertEquals(Errno.ELOOP, e.errno());
        assertEquals(4096, Files.size(target));
        try (NativeFile f = NativeFile.open(target, OpenFlag.READ_ONLY, OpenFlag.NO_FOLLOW)) {
            assertTrue(f.flags().contains(OpenFlag.NO_FOLLOW));
        }
    }

    @Test
    void flockConflictsBetweenOpenFileDescriptions() throws IOException {
        Path p = sparse("lock.img", 4096);
        try (NativeFile a = NativeFile.open(p, OpenFlag.READ_WRITE);
                NativeFile b = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            assertTrue(a.tryLock(true));
            assertFalse(b.tryLock(false));
            a.unlock();
            assertTrue(b.tryLock(false));
            assertFalse(a.tryLock(true));
        }
    }

    @Test
    void statReportsTypeIdentityAndDirectAlignment() throws IOException {
        Path p = sparse("stat.img", 12345);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            FileStat st = f.stat();
            assertEquals(FileType.REGULAR_FILE, st.type());
            assertEquals(12345, st.sizeBytes());
            assertEquals(Files.getAttribute(p, "unix:ino"), st.inode());
            assertEquals(0, st.rdevMajor());
            assertTrue(st.blockSizeBytes() > 0);
        }
        try (NativeFile d = NativeFile.open(dir, OpenFlag.READ_ONLY)) {
            assertEquals(FileType.DIRECTORY, d.stat().type());
        }
        try (NativeFile n = NativeFile.open(Path.of("/dev/null"), OpenFlag.READ_ONLY)) {
            FileStat st = n.stat();
            assertEquals(FileType.CHARACTER_DEVICE, st.type());
            assertEquals(1, st.rdevMajor());
            assertEquals(3, st.rdevMinor());
        }
    }

    @Test
    void locateNamesWhatAPathIsWithoutOpeningIt() throws Exception {
        Path fifo = dir.resolve("fifo");
        assertEquals(
                0,
                new ProcessBuilder("mkfifo", fifo.toString())
                        .inheritIO()
                        .start()
                        .waitFor());
        // A read open of a FIFO without a writer would wait for one; an O_PATH open does not.
        try (NativeFile f = NativeFile.locate(fifo)) {
            assertEquals(FileType.FIFO, f.type());
            assertEquals("fifo", f.type().describe());
        }
        Path socket = dir.resolve("socket");
        try (var server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            server.bind(java.net.UnixDomainSocketAddress.of(socket));
            try (NativeFile f = NativeFile.locate(socket)) {
                assertEquals(FileType.SOCKET, f.stat().type());
            }
        }
        try (NativeFile f = NativeFile.locate(Path.of("/dev/zero"))) {
            assertEquals(FileType.CHARACTER_DEVICE, f.type());
        }
        ErrnoException missing = assertThrows(ErrnoException.class, () -> NativeFile.locate(dir.resolve("nope")));
        assertEquals(Errno.ENOENT, missing.errno());
        assertThrows(
                IllegalArgumentException.class,
                () -> NativeFile.open(fifo, OpenFlag.PATH, OpenFlag.READ_ONLY),
                "PATH takes no other flag");
    }

    @Test
    void locateNoFollowSeesASymbolicLinkItselfWhereLocateFollowsIt() throws IOException {
        Path file = sparse("target.img", 4096);
        Path link = Files.createSymbolicLink(dir.resolve("link.img"), file);
        try (NativeFile followed = NativeFile.locate(link);
                NativeFile itself = NativeFile.locateNoFollow(link)) {
            assertEquals(FileType.REGULAR_FILE, followed.type());
            assertEquals(FileType.SYMBOLIC_LINK, itself.type());
            assertEquals("symbolic link", itself.type().describe());
        }
        try (NativeFile plain = NativeFile.locateNoFollow(file)) {
            assertEquals(FileType.REGULAR_FILE, plain.type());
        }
        assertThrows(
                IllegalArgumentException.class,
                () -> NativeFile.open(file, OpenFlag.PATH, OpenFlag.NO_FOLLOW, OpenFlag.READ_ONLY));
    }

    @Test
    void truncateGrowsAndShrinksAFile() throws IOException {
        Path p = sparse("sized.img", 8192);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE)) {
            f.truncate(1 << 20);
            assertEquals(1 << 20, f.stat().sizeBytes());
            f.truncate(4096);
            assertEquals(4096, Files.size(p));
        }
        try (NativeFile ro = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            ErrnoException e = assertThrows(ErrnoException.class, () -> ro.truncate(0));
            assertEquals(Errno.EINVAL, e.errno(), "ftruncate of a descriptor not open for writing");
        }
    }

    @Test
    void reopenOpensTheLocatedFileEvenAfterItsPathWasReplaced() throws IOException {
        Path p = sparse("located.img", 8192);
        try (NativeFile located = NativeFile.locate(p);
                Arena arena = Arena.ofConfined()) {
            Files.move(p, dir.resolve("moved.img"));
            sparse("located.img", 4096); // another file under the old name
            try (NativeFile f = located.reopen(java.util.EnumSet.of(OpenFlag.READ_WRITE))) {
                assertEquals(p, f.path(), "errors keep naming the path it was located by");
                assertEquals(8192, f.stat().sizeBytes(), "the file that was located, not the new one");
                assertEquals(
                        Files.getAttribute(dir.resolve("moved.img"), "unix:ino"),
                        f.stat().inode());
                f.write(0, arena.allocateFrom("moved"));
            }
            assertEquals("moved", new String(Files.readAllBytes(dir.resolve("moved.img")), 0, 5));
        }
    }

    @Test
    void blockIoctlsOnARegularFileFailWithEnotty() throws IOException {
        Path p = sparse("notblock.img", 4096);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY)) {
            ErrnoException e = assertThrows(ErrnoException.class, () -> BlockDevices.geometry(f));
            assertEquals(
                    "ioctl BLKGETSIZE64(path=" + p + ") failed: ENOTTY (Inappropriate ioctl for device)",
                    e.getMessage());
        }
    }

    @Test
    void mmapStoresReachTheFileAndMsyncSucceeds() throws IOException {
        Path p = sparse("map.img", 64 << 10);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_WRITE)) {
            try (MappedRegion region = f.map(8192, 8192)) {
                region.segment().set(JAVA_INT, 0, 0x70416e53);
                region.segment().set(JAVA_BYTE, 8191, (byte) 9);
                region.sync(0, 16);
                region.sync();
                assertEquals(8192, region.fileOffsetBytes());
            }
            assertThrows(IllegalArgumentException.class, () -> f.map(100, 4096));
        }
        byte[] bytes = Files.readAllBytes(p);
        assertArrayEquals(new byte[] {0x53, 0x6e, 0x41, 0x70}, java.util.Arrays.copyOfRange(bytes, 8192, 8196));
        assertEquals(9, bytes[16383]);
    }

    @Test
    void readOnlyMappingIsReadOnly() throws IOException {
        Path p = sparse("romap.img", 8192);
        try (NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY);
                MappedRegion region = f.map(0, 4096)) {
            assertTrue(region.segment().isReadOnly());
        }
    }

    @Test
    void closeIsIdempotentAndUseAfterCloseFails() throws IOException {
        Path p = sparse("close.img", 4096);
        NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY);
        f.close();
        f.close();
        assertFalse(f.isOpen());
        try (Arena arena = Arena.ofConfined()) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> f.read(0, arena.allocate(16)));
            assertEquals(p + " is closed", e.getMessage());
        }
    }

    @Test
    void bothOrNeitherAccessModeIsACallerBug() {
        assertThrows(IllegalArgumentException.class, () -> NativeFile.open(dir.resolve("x")));
        assertThrows(
                IllegalArgumentException.class,
                () -> NativeFile.open(dir.resolve("x"), OpenFlag.READ_ONLY, OpenFlag.READ_WRITE));
    }

    @Test
    void errnoNamesAndTexts() {
        assertEquals("Input/output error", Errno.EIO.text());
        assertEquals(Errno.EIO, Errno.of(Errno.EIO.value()));
        assertEquals(Errno.UNKNOWN, Errno.of(4000));
        ErrnoException e = new ErrnoException("pwrite", Errno.EIO, Path.of("/dev/loop0"), 1048576, 4096);
        assertEquals(
                "pwrite(path=/dev/loop0, offset=1048576, length=4096) failed: EIO (Input/output error)",
                e.getMessage());
        assertTrue(new ErrnoException("x", 4000, null, -1, -1).getMessage().startsWith("x() failed: errno 4000 ("));
    }
}
