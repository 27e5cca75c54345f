package dmsnap.ffm;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IoMemoryTest {
    private static final long HUGE = IoMemory.HUGE_PAGE_BYTES;

    @TempDir
    Path dir;

    @Test
    void buffersNeverCrossAHugePageAndDoNotOverlap() throws IOException {
        long each = 768 << 10; // two fit in a huge page, a third would cross
        try (IoMemory memory = IoMemory.forBuffers(5, each)) {
            assertEquals(0, memory.segment().address() % HUGE);
            assertEquals(3 * HUGE, memory.segment().byteSize());
            List<MemorySegment> slices = memory.slices(5, each);
            long previousEnd = 0;
            for (MemorySegment s : slices) {
                long start = s.address() - memory.segment().address();
                assertEquals(each, s.byteSize());
                assertEquals(start / HUGE, (start + each - 1) / HUGE, "a buffer crosses a huge page boundary");
                assertTrue(start >= previousEnd, "buffers overlap");
                previousEnd = start + each;
            }
        }
        try (IoMemory memory = IoMemory.forBuffers(2, 3 * HUGE)) { // larger than a page: each starts on one
            List<MemorySegment> slices = memory.slices(2, 3 * HUGE);
            assertEquals(6 * HUGE, memory.segment().byteSize());
            assertEquals(3 * HUGE, slices.get(1).address() - slices.get(0).address());
            assertEquals(0, slices.get(1).address() % HUGE);
        }
    }

    @Test
    void directReadsLandInIt() throws IOException {
        Path p = dir.resolve("data.img");
        byte[] data = new byte[1 << 20];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31 + 7);
        }
        Files.write(p, data);
        try (IoMemory memory = IoMemory.forBuffers(1, 1 << 20);
                NativeFile f = NativeFile.open(p, OpenFlag.READ_ONLY, OpenFlag.DIRECT)) {
            MemorySegment buffer = memory.slices(1, 1 << 20).getFirst();
            assertEquals(data.length, f.read(0, buffer));
            for (int i = 0; i < data.length; i += 4093) {
                assertEquals(data[i], buffer.get(JAVA_BYTE, i));
            }
        }
    }

    /** Where THP is on, the kernel backs the mapping with huge pages (what the copier's speed rests on). */
    @Test
    void theKernelBacksItWithHugePagesWhereThpIsOn() throws IOException {
        Path enabled = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        assumeTrue(Files.exists(enabled) && !Files.readString(enabled).contains("[never]"), "THP is off here");
        try (IoMemory memory = IoMemory.map(4 * HUGE)) {
            assertTrue(memory.hugePages());
            assertTrue(
                    anonHugeKib(memory.segment().address()) >= 2048,
                    "no huge page behind the mapping (smaps AnonHugePages)");
        }
    }

    @Test
    void closedMemoryIsUnusable() throws IOException {
        IoMemory memory = IoMemory.map(1);
        MemorySegment s = memory.segment();
        s.set(JAVA_BYTE, 0, (byte) 1);
        memory.close();
        memory.close();
        assertThrows(IllegalStateException.class, () -> s.get(JAVA_BYTE, 0));
        assertThrows(IllegalArgumentException.class, () -> IoMemory.map(0));
        assertThrows(IllegalArgumentException.class, () -> IoMemory.forBuffers(1, 1000));
    }

    /** AnonHugePages of the /proc/self/smaps entry that holds {@code address}, in KiB. */
    private static long anonHugeKib(long address) throws IOException {
        boolean inside = false;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            int dash = line.indexOf('-');
            int space = line.indexOf(' ');
            if (dash > 0 && space > dash && line.substring(0, dash).matches("[0-9a-f]+")) {
                long start = Long.parseUnsignedLong(line.substring(0, dash), 16);
                long end = Long.parseUnsignedLong(line.substring(dash + 1, space), 16);
                inside = address >= start && address < end;
            } else if (inside && line.startsWith("AnonHugePages:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return 0;
    }
}
