package dmsnap.snapshot;

import dmsnap.store.testing.FuzzBudget;
import dmsnap.store.testing.Seeds;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link SnapshotModelTest}'s random operations on tmpfs ({@code /dev/shm}), where a flush costs
 * nothing, so that thousands of cases fit in CI; the files are opened buffered (tmpfs has no
 * cache to bypass). A class of its own: the suite's longest, it runs beside the others.
 */
@ExtendWith(Seeds.class)
class SnapshotModelOnTmpfsTest {
    /** Thousands of cases where flushes are free: 2000 or two minutes (x fuzzScale), at least 50 on a busy machine. */
    private static final FuzzBudget TMPFS_CASES = FuzzBudget.of("modelTmpfs", 2000, 120_000);

    @Test
    void randomOperationsMatchTheModelOnTmpfs() throws Exception {
        Path shm = Path.of("/dev/shm");
        org.junit.jupiter.api.Assumptions.assumeTrue(
                Files.isDirectory(shm) && Files.isWritable(shm), "no writable /dev/shm");
        Path root = Files.createTempDirectory(shm, "dmsnap-model");
        try {
            SnapshotModelTest.randomCases(
                    "snapshot model on tmpfs",
                    root,
                    TMPFS_CASES,
                    () -> new dmsnap.device.BackingDevices(real ->
                            dmsnap.store.device.FileDevice.open(real, dmsnap.store.device.FileDevice.Option.BUFFERED)));
        } finally {
            SnapshotModelTest.deleteTree(root);
        }
    }
}
