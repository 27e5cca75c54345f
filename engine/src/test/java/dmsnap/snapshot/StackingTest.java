package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.device.DmException;
import dmsnap.engine.testing.SnapshotEngine;
import dmsnap.ffm.Errno;
import dmsnap.table.TableParser;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A snapshot whose origin is another mapped device (dm:NAME). */
class StackingTest {
    @TempDir
    Path dir;

    @Test
    void aSnapshotOfAMappedDevice() throws Exception {
        try (SnapshotEngine e = new SnapshotEngine(dir, 8 << 20, 4 << 20)) {
            e.dm.create("lower", null, TableParser.parse("0 16384 linear " + e.base + " 0"));
            e.dm.create("origin", null, TableParser.parse("0 16384 snapshot-origin dm:lower"));
            e.dm.get("origin").suspend();
            e.dm.create("snap", null, TableParser.parse("0 16384 snapshot dm:lower " + e.cow + " P 8"));
            e.dm.get("origin").resume();
            e.write("origin", 24, 8, 0x77);
            assertEquals(0x77, e.readByte("lower", 24));
            assertEquals(SnapshotEngine.original(24), e.readByte("snap", 24));
            assertEquals("0 16384 snapshot dm:lower " + e.cow.toRealPath() + " P 8", e.table("snap", false));
            assertEquals("0 16384 snapshot-origin dm:lower", e.table("origin", false));
            DmException busy = assertThrows(DmException.class, () -> e.dm.remove("lower", false));
            assertEquals(Errno.EBUSY, busy.errno());
            e.dm.rename("lower", "lower2");
            assertEquals("0 16384 snapshot-origin dm:lower2", e.table("origin", false));
            e.dm.remove("snap", false);
            e.dm.remove("origin", false);
            e.dm.remove("lower2", false);
        }
    }
}
