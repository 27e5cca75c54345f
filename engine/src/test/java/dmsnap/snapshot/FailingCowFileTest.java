package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.ffm.Errno;
import dmsnap.snapshot.FaultRig.LogCapture;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The victim's COW is a real file (O_DIRECT data, mmapped header and areas) that fails from
 * outside: its file system fills up (a small tmpfs), or it is truncated under the daemon. The
 * victim alone is invalidated, with one ERROR line naming the COW and what went wrong; no
 * thread dies on a fault of the mapping (SIGBUS, which the JDK raises as an InternalError), no
 * request hangs, the bystanders keep their data (see {@link FaultRig}).
 */
@ExtendWith(Seeds.class)
class FailingCowFileTest {
    private static final int PAGE = 4096;
    /** Entries per area with 4 KiB chunks: area 1 comes after 256 data chunks. */
    private static final int EXCEPTIONS_PER_AREA = PAGE / 16;

    private static final Duration HANG = Duration.ofSeconds(60);
    private static final AtomicInteger FAULT_CASES = new AtomicInteger();

    @TempDir
    Path dir;

    @AfterAll
    static void summary() {
        System.out.println("failing devices (COW files): " + FAULT_CASES.get()
                + " fault cases (full file system, truncation), each invalidating the victim alone");
        Figures.record(
                "faults.cow-files",
                FAULT_CASES.get() + " real COW files on a full tmpfs or truncated under the"
                        + " daemon (SIGBUS on the mapped metadata included): the snapshot invalidated alone, no hang");
    }

    /** A tmpfs mounted for one test (root only; skipped elsewhere). */
    private static final class Tmpfs implements AutoCloseable {
        final Path mountPoint;

        Tmpfs(Path mountPoint, int kib) throws IOException, InterruptedException {
            this.mountPoint = Files.createDirectories(mountPoint);
            int rc = run(
                    "mount", "-t", "tmpfs", "-o", "size=" + kib + "k,mode=0700", "dmsnap-test", mountPoint.toString());
            assumeTrue(rc == 0, "cannot mount a tmpfs (not root?): skipped");
        }

        /** Writes a filler file so that exactly {@code pages} pages stay free. */
        void leaveFree(int pages) throws IOException {
            long usable = Files.getFileStore(mountPoint).getUsableSpace();
            assertTrue(usable >= (long) pages * PAGE, "only " + usable + " bytes free");
            Files.write(mountPoint.resolve("filler"), new byte[(int) (usable - (long) pages * PAGE)]);
            assertEquals((long) pages * PAGE, Files.getFileStore(mountPoint).getUsableSpace());
        }

        @Override
        public void close() throws IOException, InterruptedException {
            run("umount", "-l", mountPoint.toString());
        }

        private static int run(String... command) throws IOException, InterruptedException {
            return new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start()
                    .waitFor();
        }
    }

    private static void truncate(Path file, long bytes) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
    }

    /** The victim's one ERROR line, no other, no stack trace, one count in the metric. */
    private static String theOneLine(FaultRig rig, LogCapture log, InvalidationCause cause) {
        List<String> errors = log.errors();
        assertEquals(1, errors.size(), "one ERROR line: " + errors);
        assertTrue(
                errors.getFirst()
                        .startsWith("victim: Invalidating snapshot: " + cause.kernelPhrase() + " COW " + rig.victimCow),
                errors.getFirst());
        assertEquals(List.of(), log.stackTraces());
        assertEquals(List.of("victim " + cause.label()), rig.invalidations);
        return errors.getFirst();
    }

    @Test
    void aSparseCowOnAFullFileSystemInvalidatesWithEnospc() throws Exception {
        Random random = Seeds.random("full-fs");
        try (Tmpfs fs = new Tmpfs(dir.resolve("fs"), 512);
                FaultRig rig =
                        new FaultRig(dir, "P", 16 << 20, fs.mountPoint.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            fs.leaveFree(20);
            assertTimeoutPreemptively(HANG, () -> {
                for (int chunk = 0; chunk < 30; chunk++) {
                    rig.mustWrite("origin", chunk * 8L, 8, random); // the 21st copy finds no room
                }
            });
            rig.assertOnlyInvalid("victim");
            String line = theOneLine(rig, log, InvalidationCause.IO_ERROR);
            assertTrue(
                    line.contains(": pwrite(path=" + rig.victimCow.toRealPath() + ", offset=" + (2 + 20) * PAGE
                            + ", length=4096) failed: ENOSPC (No space left on device)"),
                    line);
            rig.verifyBystanders();
            byte[] before = Files.readAllBytes(rig.victimCow);
            rig.exercise(random, 200, List.of("victim"));
            rig.verifyBystanders();
            assertArrayEquals(before, Files.readAllBytes(rig.victimCow), "nothing written to the invalid COW");
            assertEquals(1, log.errors().size());
            reloadsInvalid(rig, log);
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void aFileSystemThatFillsWhenTheNextAreaIsZeroedInvalidatesWithoutSigbus() throws Exception {
        Random random = Seeds.random("full-fs-area");
        try (Tmpfs fs = new Tmpfs(dir.resolve("fs"), 2048);
                FaultRig rig =
                        new FaultRig(dir, "P", 16 << 20, fs.mountPoint.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            // Room for the data chunks of area 0, none for area 1 (chunk 258), which the commit
            // of the 256th exception zeroes in the mapping: a store into a page tmpfs cannot give.
            fs.leaveFree(EXCEPTIONS_PER_AREA);
            assertTimeoutPreemptively(
                    HANG,
                    () -> {
                        for (int chunk = 0; chunk <= EXCEPTIONS_PER_AREA; chunk++) {
                            rig.mustWrite("origin", chunk * 8L, 8, random);
                        }
                    },
                    "an origin write hung");
            rig.assertOnlyInvalid("victim");
            String line = theOneLine(rig, log, InvalidationCause.IO_ERROR);
            assertTrue(
                    line.contains("writing exception area 0 failed")
                            && line.contains("ENOSPC (No space left on device)"),
                    line);
            rig.verifyBystanders();
            rig.exercise(random, 200, List.of("victim"));
            rig.verifyBystanders();
            reloadsInvalid(rig, log);
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void aCowTruncatedToNothingInvalidatesAtTheNextCopyAndCannotBeActivatedAgain() throws Exception {
        Random random = Seeds.random("truncated-0");
        try (FaultRig rig = new FaultRig(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            rig.mustWrite("origin", 0, 8, random);
            rig.mustWrite("victim", 400, 8, random);
            truncate(rig.victimCow, 0);
            assertTimeoutPreemptively(HANG, () -> rig.mustWrite("origin", 800, 8, random));
            rig.assertOnlyInvalid("victim");
            String line = theOneLine(rig, log, InvalidationCause.NO_SPACE);
            assertTrue(line.endsWith(" shrank to 0 sectors, below the 32 sectors in use"), line);
            String folder = rig.victimCow.toRealPath().getParent() + "/";
            assertEquals(
                    List.of("victim.cow: write header failed: the COW is 0 bytes, shorter than its header chunk"),
                    log.warnings().stream()
                            .filter(w -> w.contains("write header failed"))
                            .map(w -> w.replace(folder, ""))
                            .toList());
            rig.verifyBystanders();
            rig.exercise(random, 200, List.of("victim"));
            rig.verifyBystanders();
            assertEquals(0, Files.size(rig.victimCow), "nothing written to the truncated COW");
            assertEquals(1, log.errors().size());
            rig.dm.remove("victim", false);
            rig.dm.get("origin").suspend();
            try {
                TableLoadException e = assertThrows(
                        TableLoadException.class,
                        () -> rig.dm.create("victim", null, TableParser.parse(rig.victimTable)));
                assertEquals(
                        "Failed to read snapshot metadata: the COW " + rig.victimCow.toRealPath()
                                + " is too small to hold a header (0 bytes)",
                        e.getMessage());
                assertEquals(Errno.EIO, e.errno(), "the kernel fails to read a header past the end");
            } finally {
                rig.dm.get("origin").resume();
            }
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void readsOfATruncatedCowFailWithEioUntilTheNextCopyInvalidatesIt() throws Exception {
        Random random = Seeds.random("truncated-read");
        try (FaultRig rig = new FaultRig(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            rig.mustWrite("victim", 400, 8, random);
            truncate(rig.victimCow, 0);
            // As a block device would: past its end, an I/O error, not silence.
            assertTrue(rig.mustFailRead("victim", 400, 8).getMessage().contains("EIO"));
            rig.status("victim"); // re-reads the COW's size: 0
            assertTrue(rig.mustFailRead("victim", 400, 8).getMessage().contains("EIO"));
            rig.mustFailWrite("victim", 401, 1, random);
            assertEquals(0, Files.size(rig.victimCow), "a write past the shrunk end does not grow the file");
            assertEquals(List.of(), log.errors(), "a failed read or write does not invalidate (as the kernel's)");
            assertTimeoutPreemptively(HANG, () -> rig.mustWrite("origin", 800, 8, random));
            rig.assertOnlyInvalid("victim");
            theOneLine(rig, log, InvalidationCause.NO_SPACE);
            rig.verifyBystanders();
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void aCowTruncatedBelowItsDataInvalidatesAndReloadsInvalid() throws Exception {
        Random random = Seeds.random("truncated-data");
        try (FaultRig rig = new FaultRig(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            for (int chunk = 0; chunk < 8; chunk++) {
                rig.mustWrite("origin", chunk * 8L, 8, random);
            }
            truncate(rig.victimCow, 2 * PAGE); // the header and area 0 stay, the copies are gone
            assertTimeoutPreemptively(HANG, () -> rig.mustWrite("origin", 800, 8, random));
            rig.assertOnlyInvalid("victim");
            String line = theOneLine(rig, log, InvalidationCause.NO_SPACE);
            assertTrue(line.endsWith(" shrank to 16 sectors, below the 80 sectors in use"), line);
            rig.verifyBystanders();
            rig.exercise(random, 100, List.of("victim"));
            reloadsInvalid(rig, log);
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void aCowSeenShrunkStaysLostWhenItGrowsAgain() throws Exception {
        Random random = Seeds.random("truncated-regrown-size");
        try (FaultRig rig = new FaultRig(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            for (int chunk = 0; chunk < 8; chunk++) {
                rig.mustWrite("origin", chunk * 8L, 8, random);
            }
            truncate(rig.victimCow, 2 * PAGE);
            assertEquals("0 8192 snapshot 80/16 16", rig.status("victim")); // seen: its copies are gone
            truncate(rig.victimCow, 5 << 20); // grown again (autoextend would): holes where the copies were
            assertTimeoutPreemptively(HANG, () -> rig.mustWrite("origin", 800, 8, random));
            rig.assertOnlyInvalid("victim");
            String line = theOneLine(rig, log, InvalidationCause.NO_SPACE);
            assertTrue(line.endsWith(" shrank to 16 sectors, below the 80 sectors in use"), line);
            rig.verifyBystanders();
        }
        FAULT_CASES.incrementAndGet();
    }

    @Test
    void aTruncatedCowThatASnapshotWriteGrowsAgainIsInvalidatedAtTheNextCopy() throws Exception {
        Random random = Seeds.random("truncated-regrown");
        try (FaultRig rig = new FaultRig(dir, "P", 5 << 20, dir.resolve("victim.cow"), List.of("victim.cow"));
                LogCapture log = new LogCapture()) {
            for (int chunk = 0; chunk < 8; chunk++) {
                rig.mustWrite("victim", chunk * 8L, 8, random);
            }
            truncate(rig.victimCow, 0);
            // The COW's size was not looked at since: the write lands past the end of the file and
            // grows it back, a hole in front (the header, area 0, chunks 0-6: gone).
            rig.write("victim", 57, new byte[512]);
            assertTimeoutPreemptively(HANG, () -> rig.mustWrite("origin", 800, 8, random));
            rig.assertOnlyInvalid("victim");
            assertEquals(1, log.errors().size(), log.errors().toString());
            assertEquals(List.of(), log.stackTraces());
            rig.verifyBystanders();
        }
        FAULT_CASES.incrementAndGet();
    }

    private static void reloadsInvalid(FaultRig rig, LogCapture log) throws Exception {
        rig.dm.remove("victim", false);
        rig.dm.get("origin").suspend();
        try {
            rig.dm.create("victim", null, TableParser.parse(rig.victimTable));
        } finally {
            rig.dm.get("origin").resume();
        }
        assertTrue(
                log.warnings().contains("victim: Snapshot is marked invalid."),
                log.warnings().toString());
        assertEquals("0 " + FaultRig.SECTORS + " snapshot Invalid", rig.status("victim"));
    }
}
