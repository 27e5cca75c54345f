package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Metadata maps are unmapped by the group: when the last map of a full group, or of a closed device, is closed. */
class MapArenasTest {
    private static final long AREA = 4096;
    private static final int PER_GROUP = (int) (MapArenas.GROUP_BYTES / AREA);

    @TempDir
    Path dir;

    @Test
    void aFullGroupClosesWithItsLastMapAndNotBefore() {
        MapArenas arenas = new MapArenas();
        List<MapArenas.Group> taken = new ArrayList<>();
        for (int i = 0; i < PER_GROUP; i++) {
            taken.add(arenas.take(AREA));
        }
        MapArenas.Group first = taken.get(0);
        taken.forEach(g -> assertSame(first, g));
        MapArenas.Group next = arenas.take(AREA); // the first group is full now
        assertNotSame(first, next);
        for (int i = 0; i < PER_GROUP - 1; i++) {
            taken.get(i).release();
        }
        assertTrue(first.arena.scope().isAlive(), "one of its maps is still in use");
        taken.get(PER_GROUP - 1).release();
        assertFalse(first.arena.scope().isAlive());
        assertTrue(next.arena.scope().isAlive(), "the group being filled stays until it is full or the device closes");
        next.release();
        assertTrue(next.arena.scope().isAlive());
        arenas.close();
        assertFalse(next.arena.scope().isAlive());
        assertThrows(IllegalStateException.class, () -> arenas.take(AREA));
    }

    @Test
    void aMapLargerThanAGroupGetsAGroupOfItsOwn() {
        MapArenas arenas = new MapArenas();
        MapArenas.Group small = arenas.take(AREA);
        MapArenas.Group large = arenas.take(2 * MapArenas.GROUP_BYTES);
        assertNotSame(small, large);
        assertNotSame(large, arenas.take(AREA));
    }

    @Test
    void aMapStillOpenWhenTheDeviceClosesKeepsWorkingAndItsCloseReleasesTheFile() throws IOException {
        Path p = dir.resolve("cow");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(64 * AREA);
        }
        FileDevice device = FileDevice.open(p);
        List<MetadataMap> maps = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            maps.add(device.mapMetadata(i * 2 * AREA, AREA));
        }
        maps.get(0).close();
        maps.get(1).close();
        device.close();
        MetadataMap last = maps.get(2);
        last.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 0x1122334455667788L);
        last.sync(0, AREA);
        // The mapping holds the file, and with it the lock, until it is gone.
        assertThrows(IOException.class, () -> FileDevice.open(p).close());
        last.close();
        last.close(); // idempotent: the group is released once
        try (FileDevice again = FileDevice.open(p)) {
            MemorySegment read = java.lang.foreign.Arena.ofAuto().allocate(AREA, 4096);
            again.read(4 * AREA, read);
            assertEquals(0x1122334455667788L, read.get(ValueLayout.JAVA_LONG_UNALIGNED, 0));
        }
    }
}
