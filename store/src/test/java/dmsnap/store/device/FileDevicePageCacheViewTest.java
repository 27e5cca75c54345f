package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link FileDevice#buffered()}: the writeback cache mode's COW data, the same file through the page cache. */
class FileDevicePageCacheViewTest {
    @TempDir
    Path dir;

    private FileDevice direct(long sizeBytes) throws IOException {
        String why = TempFiles.directIoUnavailable(dir);
        assumeTrue(why == null, why);
        return FileDevice.open(TempFiles.sparse(dir, "cow.img", sizeBytes));
    }

    @Test
    void theViewReadsAndWritesTheSameDataWithoutAlignmentAndCoherentlyWithDirectIo() throws IOException {
        try (FileDevice device = direct(1 << 20);
                Arena arena = Arena.ofConfined()) {
            Device view = device.buffered();
            assertSame(view, device.buffered(), "one view per device");
            assertEquals(1, view.bufferAlignmentBytes());
            // An odd address: no O_DIRECT alignment.
            view.write(4096, arena.allocate(4097, 4096).asSlice(1, 4096).fill((byte) 5));
            MemorySegment aligned = arena.allocate(4096, 4096);
            device.read(4096, aligned); // a direct read writes the dirty pages back first
            assertEquals(5, aligned.get(ValueLayout.JAVA_BYTE, 4095));
            device.write(8192, aligned.fill((byte) 6)); // a direct write drops the cached pages
            MemorySegment back = arena.allocate(4097, 4096).asSlice(1, 4096);
            view.read(8192, back);
            assertEquals(6, back.get(ValueLayout.JAVA_BYTE, 0));
            view.flush();
        }
    }

    @Test
    void theViewFollowsTheDevicesSizeAndGoesWithIt() throws IOException {
        FileDevice device = direct(1 << 20);
        Device view = device.buffered();
        Arena arena = Arena.ofAuto();
        MemorySegment sector = arena.allocate(512);
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("cow.img").toFile(), "rw")) {
            f.setLength(2 << 20); // an autoextend
        }
        device.refreshSize();
        assertEquals(2 << 20, view.sizeBytes());
        view.write((2 << 20) - 512, sector);
        view.close(); // the device owns it: nothing happens
        view.write(0, sector);
        device.close();
        assertThrows(IllegalStateException.class, () -> view.write(0, sector));
    }

    @Test
    void theViewReadsWhatThePageCacheHoldsWithoutWaitingAndTheDirectDeviceNeverTries() throws IOException {
        try (FileDevice device = direct(1 << 20);
                Arena arena = Arena.ofConfined()) {
            Device view = device.buffered();
            view.write(16384, arena.allocate(8192).fill((byte) 7)); // its pages are cached (dirty)
            MemorySegment back = arena.allocate(8192);
            assertTrue(view.readIfCached(16384, back));
            assertEquals(7, back.get(ValueLayout.JAVA_BYTE, 8191));
            assertTrue(view.read(16384, back, true), "the nowait read path");
            MemorySegment aligned = arena.allocate(8192, 4096);
            assertFalse(device.readIfCached(16384, aligned), "O_DIRECT: never tried");
            // The same range rules as read.
            assertThrows(IllegalArgumentException.class, () -> view.readIfCached(1 << 20, back));
        }
        try (MemoryDevice memory = new MemoryDevice("m", 1 << 20);
                Arena arena = Arena.ofConfined()) {
            assertFalse(memory.readIfCached(0, arena.allocate(512)), "no page cache: the default");
        }
    }

    @Test
    void aDeviceWithoutDirectIoIsItsOwnView() throws IOException {
        try (FileDevice buffered =
                FileDevice.open(TempFiles.sparse(dir, "plain.img", 1 << 20), FileDevice.Option.BUFFERED)) {
            assertSame(buffered, buffered.buffered());
        }
        try (MemoryDevice memory = new MemoryDevice("m", 1 << 20)) {
            assertSame(memory, memory.buffered());
        }
    }
}
