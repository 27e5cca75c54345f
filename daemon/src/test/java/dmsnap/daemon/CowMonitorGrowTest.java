package dmsnap.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Autoextend only ever grows a COW file, whatever happened to it since its size was read. */
class CowMonitorGrowTest {
    @TempDir
    Path dir;

    @Test
    void aCowGrownBySomeoneElseSinceItsSizeWasReadIsNotCutBack() throws Exception {
        Path cow = dir.resolve("cow.img");
        byte[] tail = "chunk in use near the end".getBytes();
        try (var f = java.nio.channels.FileChannel.open(
                cow, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            f.write(java.nio.ByteBuffer.wrap(tail), (1 << 20) - tail.length); // grown to 1 MiB by an administrator
        }
        try (NativeFile file = NativeFile.open(cow, OpenFlag.READ_WRITE)) {
            CowMonitor.grow(file, 64 << 10, 128 << 10); // the monitor read 64 KiB before that
        }
        assertEquals(1 << 20, Files.size(cow), "the COW keeps its end");
        byte[] all = Files.readAllBytes(cow);
        assertEquals(new String(tail), new String(all, all.length - tail.length, tail.length));
    }

    @Test
    void aCowIsGrownToTheNewSize() throws Exception {
        Path cow = Files.write(dir.resolve("cow.img"), new byte[64 << 10]);
        try (NativeFile file = NativeFile.open(cow, OpenFlag.READ_WRITE)) {
            CowMonitor.grow(file, 64 << 10, 96 << 10);
        }
        assertEquals(96 << 10, Files.size(cow));
    }
}
