package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Block status of a sparse file: SEEK_DATA/SEEK_HOLE runs, bounded by what was asked. */
class FileDeviceExtentsTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void aSparseFileReportsItsDataAndHolesInRuns() throws IOException {
        Path file = dir.resolve("sparse.img");
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(16 * MIB);
        }
        try (FileChannel f = FileChannel.open(file, StandardOpenOption.WRITE)) {
            f.write(ByteBuffer.wrap(new byte[(int) MIB]), 0); // zeroes written are data all the same
            f.write(ByteBuffer.wrap(new byte[(int) (2 * MIB)]), 5 * MIB);
            f.force(true);
        }
        try (FileDevice d = FileDevice.open(file, FileDevice.Option.BUFFERED)) {
            List<String> runs = walk(d, 0, 16 * MIB);
            assumeTrue(runs.size() > 1, "this file system reports no holes (" + runs + ")");
            assertEquals(
                    List.of("data 0+1048576", "hole 1048576+4194304", "data 5242880+2097152", "hole 7340032+9437184"),
                    runs);
            assertEquals(List.of("hole 2097152+1048576"), walk(d, 2 * MIB, MIB), "bounded by the range asked");
            assertEquals(List.of("data 5767168+4096"), walk(d, 5 * MIB + 512 * 1024, 4096));
            assertEquals(List.of("data 1044480+4096", "hole 1048576+4096"), walk(d, MIB - 4096, 8192));
        }
    }

    @Test
    void memoryReportsData() throws IOException {
        try (MemoryDevice d = new MemoryDevice("m", 8 * MIB)) {
            assertEquals(List.of("data 0+8388608"), walk(d, 0, 8 * MIB));
        }
    }

    /** The runs from {@code offset} to {@code offset + length}, as "data|hole OFFSET+LENGTH". */
    private static List<String> walk(Device d, long offset, long length) throws IOException {
        List<String> runs = new ArrayList<>();
        for (long at = offset; at < offset + length; ) {
            Extent e = d.extentAt(at, offset + length - at);
            runs.add((e.hole() ? "hole " : "data ") + at + "+" + e.lengthBytes());
            at += e.lengthBytes();
        }
        return runs;
    }
}
