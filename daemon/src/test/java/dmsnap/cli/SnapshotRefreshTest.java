package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code snapshot refresh} against an in-process daemon: it says what happened to the exception store. */
class SnapshotRefreshTest {
    @TempDir
    Path dir;

    private VolSnapDaemon rig;

    private CliRunner cli(String... args) {
        return rig.cli(args);
    }

    @BeforeEach
    void start() throws Exception {
        rig = VolSnapDaemon.start(dir);
    }

    @AfterEach
    void stop() {
        rig.close();
    }

    @Test
    void aRefreshOfTheLiveCowHandsTheStoreOver() {
        CliRunner r = cli("snapshot", "refresh", "snap");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("resumed snap (exception store handed over)"), r.out());
    }

    @Test
    void aRefreshWhoseCowPathNowNamesAnotherFileHandsNothingOverAndChangesNothing() throws Exception {
        assertEquals(0, cli("status", "snap").exitCode());
        String statusBefore = cli("status", "snap").out();
        // The COW path is swapped to a new file: a reload of the same table would read that one
        // afresh instead of taking over the live store.
        Files.move(rig.cow, dir.resolve("snap.cow.old"));
        VolSnapDaemon.sparse(rig.cow, 4 << 20);
        CliRunner r = cli("snapshot", "refresh", "snap");
        assertEquals(ExitCodes.FAILED, r.exitCode(), r.out());
        assertFalse(r.out().contains("handed over"), r.out());
        assertEquals(
                "dmsnap: snap: the reloaded table did not take over the live exception store: its origin "
                        + dir.resolve("base.img").toRealPath() + " or COW " + rig.cow.toRealPath()
                        + " now names another file than"
                        + " the live table's (was one replaced?); cleared the inactive table, snap is unchanged\n",
                r.err());
        assertEquals(statusBefore, cli("status", "snap").out(), "the live snapshot is untouched");
        assertEquals("", cli("table", "--inactive", "snap").out().strip(), "no inactive table left");
    }
}
