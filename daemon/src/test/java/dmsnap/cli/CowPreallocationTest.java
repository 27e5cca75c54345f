package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code snapshot create --preallocation}: what each mode leaves on the file system. */
class CowPreallocationTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    /** Bytes the file system has allocated to {@code p} (st_blocks * 512). */
    static long allocatedBytes(Path p) throws IOException, InterruptedException {
        Process stat = new ProcessBuilder("stat", "-c", "%b", p.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(stat.getInputStream().readAllBytes()).trim();
        assertEquals(0, stat.waitFor(), out);
        return Long.parseLong(out) * 512;
    }

    /** filefrag -v's extent list: "unwritten" marks fallocated blocks nobody wrote. */
    private static String extents(Path p) throws IOException, InterruptedException {
        Process frag = new ProcessBuilder("filefrag", "-v", p.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(frag.getInputStream().readAllBytes());
        assertEquals(0, frag.waitFor(), out);
        return out;
    }

    @Test
    void offIsSparseFallocReservesAndFullWritesEveryBlock() throws Exception {
        Path off = dir.resolve("off.cow");
        Path falloc = dir.resolve("falloc.cow");
        Path full = dir.resolve("full.cow");
        CowPreallocation.OFF.grow(off, 0, 8 * MIB, "t");
        CowPreallocation.FALLOC.grow(falloc, 0, 8 * MIB, "t");
        CowPreallocation.FULL.grow(full, 0, 8 * MIB, "t");
        for (Path p : new Path[] {off, falloc, full}) {
            assertEquals(8 * MIB, Files.size(p), p.toString());
        }
        assertEquals(0, allocatedBytes(off));
        assertTrue(allocatedBytes(falloc) >= 8 * MIB, "falloc allocates");
        assertTrue(allocatedBytes(full) >= 8 * MIB, "full allocates");
        assertTrue(extents(falloc).contains("unwritten"), extents(falloc));
        assertTrue(!extents(full).contains("unwritten"), extents(full));
        assertArrayEquals(new byte[(int) (8 * MIB)], Files.readAllBytes(full));
    }

    @Test
    void growingKeepsWhatTheFileHeldAndAnUnalignedEndIsWrittenToo() throws Exception {
        Path cow = dir.resolve("grown.cow");
        byte[] held = new byte[(int) MIB + 512];
        Arrays.fill(held, (byte) 0x5a);
        Files.write(cow, held);
        long to = 3 * MIB + 1000; // neither end aligned: buffered writes
        CowPreallocation.FULL.grow(cow, held.length, to, "t");
        byte[] now = Files.readAllBytes(cow);
        assertEquals(to, now.length);
        assertArrayEquals(held, Arrays.copyOf(now, held.length));
        assertArrayEquals(new byte[(int) (to - held.length)], Arrays.copyOfRange(now, held.length, now.length));
        assertTrue(!extents(cow).contains("unwritten"), extents(cow));
    }

    @Test
    void anUnknownModeIsRefusedByName() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> CowPreallocation.parse("thick"));
        assertEquals("--preallocation thick: expected off, falloc or full", e.getMessage());
        assertEquals(CowPreallocation.FULL, CowPreallocation.parse("full"));
    }
}
