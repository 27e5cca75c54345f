package dmsnap.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import dmsnap.snapshot.FaultRig.Faults;
import dmsnap.snapshot.FaultRig.LogCapture;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.FaultyDevice.Op;
import dmsnap.store.testing.Figures;
import dmsnap.store.testing.Seeds;
import dmsnap.table.TableParser;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Failing devices under a live snapshot stack, injected inside the engine ({@link FaultyDevice}
 * under every file; issue 16). What each fault must do is the kernel's (spec 5.2, 7):
 * <ul>
 *   <li>a failed copy, whole-chunk write, area write or flush of a commit invalidates the snapshot
 *       whose COW failed, and only it: status {@code Invalid}, one ERROR line naming the COW and
 *       the errno, one count in the invalidation metric, the header rewritten with valid=0 once
 *       and then nothing more written to that COW; the origin, the other snapshots and an
 *       unrelated device keep working with their data intact (compared with a model);</li>
 *   <li>a failed read of a COW chunk, a failed write into a chunk that already has its exception,
 *       a failed flush asked for by a client, a failed plain read of the origin and a failed
 *       origin write fail that request only: nothing is invalidated (the kernel remaps those
 *       bios and hands their error back);</li>
 *   <li>a failed read of the origin for a copy-out invalidates every snapshot that needed that
 *       copy (each kernel snapshot copies on its own, and each copy fails); the origin write
 *       then goes ahead.</li>
 * </ul>
 */
@ExtendWith(Seeds.class)
class FailingDevicesTest {
    private static final AtomicInteger FAULT_CASES = new AtomicInteger();
    private static final AtomicInteger INVALIDATED = new AtomicInteger();
    private static final AtomicInteger SURVIVED = new AtomicInteger();

    @TempDir
    Path dir;

    @AfterAll
    static void summary() {
        System.out.println("failing devices (engine): " + FAULT_CASES.get() + " fault cases, " + INVALIDATED.get()
                + " snapshots invalidated alone, " + SURVIVED.get() + " faults that failed only their request");
        Figures.record(
                "faults.engine",
                FAULT_CASES.get() + " injected faults (EIO on COW read/write/flush and origin"
                        + " read, a full COW, concurrent writers): " + INVALIDATED.get()
                        + " snapshots invalidated alone (one ERROR"
                        + " line, header marked once, nothing written after), " + SURVIVED.get()
                        + " faults failed only their"
                        + " request as the kernel's; origin, other snapshots and other devices equal to the model");
    }

    /** Origin writes to chunks 0-7, the victim's own writes (whole and partial chunks), bystander I/O. */
    private static void populate(FaultRig rig, Random random) throws Exception {
        for (int chunk = 0; chunk < 8; chunk++) {
            rig.mustWrite("origin", chunk * 8L, 8, random);
        }
        rig.mustWrite("victim", 400, 8, random);
        rig.mustWrite("victim", 409, 3, random);
        rig.mustWrite("other", 80, 8, random); // "other" has chunk 10 now; the others do not
        rig.exercise(random, 60, List.of());
        rig.verify("victim");
    }

    private static String faulty(Path file) throws IOException {
        return "faulty(" + file.toRealPath() + ")";
    }

    /** A fault of the victim's COW that invalidates it. */
    enum CowFault {
        DATA_WRITE_OF_A_COPY_OUT,
        DATA_WRITE_OF_A_WHOLE_CHUNK_SNAPSHOT_WRITE,
        COPY_OF_A_PARTIAL_SNAPSHOT_WRITE,
        AREA_WRITE,
        FLUSH_OF_A_COMMIT,
        NO_SPACE_FOR_A_COPY_OUT
    }

    @ParameterizedTest
    @EnumSource(CowFault.class)
    void aCowFaultInvalidatesThatSnapshotAlone(CowFault fault) throws Exception {
        Random random = Seeds.random("cow-fault-" + fault);
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            String name = faulty(rig.victimCow);
            int mark = cow.mark();
            String errno = "EIO (Input/output error): injected fault";
            String reason = "COW " + name + ": pwrite(path=" + name + ", offset=";
            switch (fault) {
                case DATA_WRITE_OF_A_COPY_OUT -> {
                    cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
                    rig.mustWrite("origin", 800, 8, random); // chunk 100 is new to every snapshot
                }
                case DATA_WRITE_OF_A_WHOLE_CHUNK_SNAPSHOT_WRITE -> {
                    cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
                    rig.mustFailWrite("victim", 1600, 8, random);
                }
                case COPY_OF_A_PARTIAL_SNAPSHOT_WRITE -> {
                    cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
                    rig.mustFailWrite("victim", 1611, 2, random);
                }
                case AREA_WRITE -> {
                    cow.fail(r -> r.op() == Op.WRITE
                            && r.offsetBytes() >= FaultRig.CHUNK_BYTES
                            && r.offsetBytes() < 2 * FaultRig.CHUNK_BYTES);
                    rig.mustWrite("origin", 800, 8, random);
                    reason = "COW " + name + ": writing exception area 0 failed: pwrite(path=" + name + ", offset=";
                }
                case FLUSH_OF_A_COMMIT -> {
                    cow.fail(r -> r.op() == Op.FLUSH);
                    rig.mustWrite("origin", 800, 8, random);
                    reason = "COW " + name + ": writing exception area 0 failed: fdatasync(path=" + name + ")";
                }
                case NO_SPACE_FOR_A_COPY_OUT -> {
                    cow.device.failWith(Errno.ENOSPC);
                    cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
                    rig.mustWrite("origin", 800, 8, random);
                    errno = "ENOSPC (No space left on device): injected fault";
                }
            }
            assertInvalidatedAlone(rig, log, InvalidationCause.IO_ERROR, reason, errno);
            assertNothingWrittenAfterTheHeader(cow, mark);
            int after = cow.mark();
            rig.exercise(random, 300, List.of("victim"));
            rig.verifyBystanders();
            assertEquals(List.of(), cow.writesSince(after), "nothing written to the invalid snapshot's COW");
            assertEquals(1, log.errors().size(), "still one ERROR line: " + log.errors());
            assertEquals(List.of("victim io_error"), rig.invalidations);
            if (fault == CowFault.FLUSH_OF_A_COMMIT) {
                // The header could not be made durable either: "write header failed", as the kernel's.
                assertEquals(
                        1,
                        log.warnings().stream()
                                .filter(w -> w.contains("write header failed"))
                                .count(),
                        log.warnings().toString());
            } else {
                assertReloadsInvalid(rig, log, cow);
            }
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.incrementAndGet();
    }

    /**
     * Status: the victim {@code Invalid}, the others with usage numbers; one ERROR line (the
     * kernel's phrase, the COW, the errno), no stack trace, one count; the bystanders read what
     * the model says.
     */
    private static void assertInvalidatedAlone(FaultRig rig, LogCapture log, InvalidationCause cause, String... parts)
            throws Exception {
        rig.assertOnlyInvalid("victim");
        List<String> errors = log.errors();
        assertEquals(1, errors.size(), "one ERROR line: " + errors);
        String line = errors.getFirst();
        assertTrue(line.startsWith("victim: Invalidating snapshot: " + cause.kernelPhrase() + " "), line);
        for (String part : parts) {
            assertTrue(line.contains(part), "[" + part + "] in " + line);
        }
        assertEquals(List.of(), log.stackTraces());
        assertEquals(List.of("victim " + cause.label()), rig.invalidations);
        rig.verifyBystanders();
    }

    /** After the fault the victim's COW got its header (valid=0) once, and that was the last write. */
    private static void assertNothingWrittenAfterTheHeader(Faults cow, int mark) {
        List<FaultyDevice.Request> writes = cow.writesSince(mark);
        List<FaultyDevice.Request> headers =
                writes.stream().filter(r -> r.offsetBytes() == 0).toList();
        assertEquals(
                List.of(new FaultyDevice.Request(Op.WRITE, 0, FaultRig.CHUNK_BYTES)),
                headers,
                "the header, once: " + writes);
        assertEquals(headers.getFirst(), writes.getLast(), "nothing after the header: " + writes);
    }

    /** Reactivated (the fault gone), the COW says it is invalid: the kernel's "Snapshot is marked invalid." */
    private static void assertReloadsInvalid(FaultRig rig, LogCapture log, Faults cow) throws Exception {
        cow.heal();
        rig.dm.remove("victim", false);
        rig.dm.get("origin").suspend();
        rig.dm.create("victim", null, TableParser.parse(rig.victimTable));
        rig.dm.get("origin").resume();
        assertTrue(
                log.warnings().contains("victim: Snapshot is marked invalid."),
                log.warnings().toString());
        assertEquals("0 " + FaultRig.SECTORS + " snapshot Invalid", rig.status("victim"));
    }

    @Test
    void aCowReadErrorFailsThatReadOnly() throws Exception {
        Random random = Seeds.random("cow-read");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            cow.fail(r -> r.op() == Op.READ && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
            IOException e = rig.mustFailRead("victim", 400, 8); // its own write: in the COW
            assertTrue(e.getMessage().contains("EIO"), e.getMessage());
            rig.mustRead("victim", 1600, 8); // chunk 200, which exercise never writes: read from the origin
            rig.exercise(random, 100, List.of());
            rig.assertOnlyInvalid();
            cow.heal();
            rig.verify("victim");
            rig.verifyBystanders();
            assertEquals(List.of(), log.errors());
            assertEquals(List.of(), rig.invalidations);
        }
        FAULT_CASES.incrementAndGet();
        SURVIVED.incrementAndGet();
    }

    @Test
    void aCowWriteErrorIntoAChunkWithAnExceptionFailsThatWriteOnly() throws Exception {
        Random random = Seeds.random("cow-write-mapped");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
            rig.mustFailWrite("victim", 401, 4, random); // chunk 50 has its exception: remapped, no copy
            rig.mustRead("victim", 400, 8); // what it was
            rig.assertOnlyInvalid();
            cow.heal();
            rig.mustWrite("victim", 401, 4, random);
            rig.exercise(random, 100, List.of());
            rig.verify("victim");
            rig.verifyBystanders();
            assertEquals(List.of(), log.errors());
            assertEquals(List.of(), rig.invalidations);
        }
        FAULT_CASES.incrementAndGet();
        SURVIVED.incrementAndGet();
    }

    @Test
    void aCowFlushErrorFailsThatFlushOnly() throws Exception {
        Random random = Seeds.random("cow-flush");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            cow.fail(r -> r.op() == Op.FLUSH);
            try {
                rig.flush("victim");
                throw new AssertionError("the flush of the victim succeeded");
            } catch (IOException expected) {
                assertTrue(expected.getMessage().contains("EIO"), expected.getMessage());
            }
            rig.flush("origin");
            rig.flush("other");
            rig.flush("lin");
            rig.assertOnlyInvalid();
            cow.heal();
            rig.flush("victim");
            rig.exercise(random, 100, List.of());
            rig.verify("victim");
            rig.verifyBystanders();
            assertEquals(List.of(), log.errors());
            assertEquals(List.of(), rig.invalidations);
        }
        FAULT_CASES.incrementAndGet();
        SURVIVED.incrementAndGet();
    }

    @Test
    void aPlainOriginReadErrorFailsThatReadOnly() throws Exception {
        Random random = Seeds.random("origin-read");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults origin = rig.faultsOf("base.img");
            long from = 1600L << 9; // chunk 200, which exercise never writes: no snapshot has it
            origin.fail(r ->
                    r.op() == Op.READ && r.offsetBytes() < from + 4096 && r.offsetBytes() + r.lengthBytes() > from);
            rig.mustFailRead("origin", 1600, 8);
            rig.mustFailRead("victim", 1600, 8); // no exception there: the snapshot reads the origin
            rig.mustFailRead("other", 1601, 1);
            rig.mustRead("origin", 0, 64);
            rig.mustRead("lin", 0, 64);
            rig.assertOnlyInvalid();
            origin.heal();
            rig.exercise(random, 100, List.of());
            rig.verify("victim");
            rig.verifyBystanders();
            assertEquals(List.of(), log.errors());
            assertEquals(List.of(), rig.invalidations);
        }
        FAULT_CASES.incrementAndGet();
        SURVIVED.incrementAndGet();
    }

    @Test
    void anOriginWriteErrorFailsThatWriteOnlyAndTheSnapshotsKeepTheirCopies() throws Exception {
        Random random = Seeds.random("origin-write");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults origin = rig.faultsOf("base.img");
            origin.fail(r -> r.op() == Op.WRITE && r.offsetBytes() == 1600L << 9);
            rig.mustFailWrite("origin", 1600, 8, random); // chunk 200 is copied out first, then the write fails
            rig.assertOnlyInvalid();
            origin.heal();
            rig.verify("origin"); // unchanged
            rig.verify("victim");
            rig.verifyBystanders();
            rig.exercise(random, 100, List.of());
            rig.verifyBystanders();
            assertEquals(List.of(), log.errors());
            assertEquals(List.of(), rig.invalidations);
        }
        FAULT_CASES.incrementAndGet();
        SURVIVED.incrementAndGet();
    }

    @Test
    void anOriginReadErrorDuringACopyOutInvalidatesEverySnapshotThatNeededTheCopy() throws Exception {
        Random random = Seeds.random("origin-read-copy");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults origin = rig.faultsOf("base.img");
            String base = faulty(rig.base);
            long from = 80L << 9; // chunk 10 (8 sectors), chunk 5 of po (16 sectors)
            origin.fail(r ->
                    r.op() == Op.READ && r.offsetBytes() < from + 8192 && r.offsetBytes() + r.lengthBytes() > from);
            rig.mustWrite("origin", 80, 8, random); // the copies fail; then the write goes ahead
            origin.heal();
            // "other" had chunk 10 already: it needed no copy.
            assertEquals("0 8192 snapshot Invalid", rig.status("victim"));
            assertEquals("0 8192 snapshot Invalid", rig.status("po"));
            assertEquals("0 8192 snapshot Invalid", rig.status("temp"));
            assertTrue(rig.status("other").matches("0 8192 snapshot \\d+/\\d+ \\d+"), rig.status("other"));
            List<String> errors = log.errors();
            assertEquals(3, errors.size(), errors.toString());
            for (String device : List.of("victim", "po", "temp")) {
                assertEquals(
                        1,
                        errors.stream()
                                .filter(l ->
                                        l.startsWith(device + ": Invalidating snapshot: Error reading/writing. origin "
                                                        + base + ": pread(path=" + base + ", offset=40960, length=")
                                                && l.endsWith("failed: EIO (Input/output error): injected fault"))
                                .count(),
                        device + " in " + errors);
            }
            assertEquals(
                    List.of("io_error", "io_error", "io_error"),
                    rig.invalidations.stream()
                            .map(s -> s.substring(s.indexOf(' ') + 1))
                            .toList());
            assertEquals(List.of(), log.stackTraces());
            rig.verify("origin");
            rig.verify("other");
            rig.verify("lin");
            rig.exercise(random, 200, List.of("po", "temp", "victim"));
            rig.verify("origin");
            rig.verify("other");
            rig.verify("lin");
            assertEquals(3, log.errors().size());
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.addAndGet(3);
    }

    @Test
    void concurrentWritesIntoAFailingCowLogOneLineAndWriteOneHeader() throws Exception {
        Random random = Seeds.random("concurrent");
        try (FaultRig rig = new FaultRig(dir);
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            int mark = cow.mark();
            cow.fail(r -> r.op() == Op.WRITE && r.offsetBytes() >= 2 * FaultRig.CHUNK_BYTES);
            int threads = 8;
            CountDownLatch start = new CountDownLatch(1);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    Random mine = Seeds.random("concurrent-" + t);
                    long first = 2000 + t * 16 * 8L; // 16 new chunks per thread, none shared
                    done.add(pool.submit(() -> {
                        start.await();
                        for (int i = 0; i < 16; i++) {
                            rig.mustWrite("origin", first + i * 8L, 8, mine);
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : done) {
                    f.get();
                }
            } finally {
                pool.shutdown();
            }
            assertInvalidatedAlone(
                    rig,
                    log,
                    InvalidationCause.IO_ERROR,
                    "COW " + faulty(rig.victimCow),
                    "EIO (Input/output error): injected fault");
            assertNothingWrittenAfterTheHeader(cow, mark);
            rig.exercise(random, 100, List.of("victim"));
            assertEquals(1, log.errors().size());
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.incrementAndGet();
    }

    @Test
    void aFullPoCowOverflowsOnASnapshotWriteAndIsInvalidatedByAnOriginWriteThatNeedsRoom() throws Exception {
        Random random = Seeds.random("po-full");
        // Header, area 0 and two data chunks.
        try (FaultRig rig = new FaultRig(dir, "PO", 4 * FaultRig.CHUNK_BYTES, dir.resolve("victim.cow"), List.of());
                LogCapture log = new LogCapture()) {
            rig.mustWrite("victim", 0, 8, random);
            rig.mustWrite("victim", 9, 1, random);
            Faults cow = rig.faultsOf("victim.cow");
            int mark = cow.mark();
            rig.mustFailWrite("victim", 16, 8, random);
            assertEquals("0 8192 snapshot Overflow", rig.status("victim"));
            assertEquals(List.of("victim: Snapshot overflowed: Unable to allocate exception."), log.errors());
            rig.mustFailWrite("victim", 0, 1, random); // even into a chunk it has
            rig.verify("victim"); // reads keep working
            assertEquals(List.of(), cow.writesSince(mark));
            rig.mustWrite("origin", 800, 8, random); // needs a chunk the COW does not have
            rig.assertOnlyInvalid("victim");
            assertEquals(
                    List.of(
                            "victim: Snapshot overflowed: Unable to allocate exception.",
                            "victim: Invalidating snapshot: Unable to allocate exception. COW " + faulty(rig.victimCow)
                                    + " is full (32 sectors)"),
                    log.errors());
            assertEquals(List.of("victim cow_full"), rig.invalidations);
            assertNothingWrittenAfterTheHeader(cow, mark);
            rig.verifyBystanders();
            int after = cow.mark();
            rig.exercise(random, 200, List.of("victim"));
            assertEquals(List.of(), cow.writesSince(after));
            assertEquals(List.of(), log.stackTraces());
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.incrementAndGet();
    }

    /** Where the allocation whose COW size query fails comes from. */
    enum AllocatingWrite {
        SNAPSHOT_WRITE,
        ORIGIN_WRITE
    }

    /**
     * An I/O error of the COW while allocating an exception (its size could not be read) is not a
     * full COW: a PO snapshot is invalidated as an I/O error, never marked overflowed, and the
     * line and the metric say the errno, not "Unable to allocate exception".
     */
    @ParameterizedTest
    @EnumSource(AllocatingWrite.class)
    void aCowErrorWhileAllocatingInvalidatesAPoSnapshotAsAnIoError(AllocatingWrite write) throws Exception {
        Random random = Seeds.random("po-prepare-eio-" + write);
        try (FaultRig rig = new FaultRig(dir, "PO", 5 << 20, dir.resolve("victim.cow"), List.of());
                LogCapture log = new LogCapture()) {
            populate(rig, random);
            Faults cow = rig.faultsOf("victim.cow");
            int mark = cow.mark();
            cow.device.failNextSizeQuery();
            switch (write) {
                case SNAPSHOT_WRITE -> {
                    IOException e = rig.mustFailWrite("victim", 1600, 8, random);
                    assertTrue(e.getMessage().contains("EIO"), e.getMessage());
                }
                case ORIGIN_WRITE -> rig.mustWrite("origin", 1600, 8, random); // goes ahead without the copy
            }
            String name = faulty(rig.victimCow);
            assertInvalidatedAlone(
                    rig,
                    log,
                    InvalidationCause.IO_ERROR,
                    "COW " + name + ": fstat(path=" + name + ") failed: EIO (Input/output error): injected fault");
            assertNothingWrittenAfterTheHeader(cow, mark);
            assertReloadsInvalid(rig, log, cow);
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.incrementAndGet();
    }

    @Test
    void aFullPCowInvalidatesOnASnapshotWrite() throws Exception {
        Random random = Seeds.random("p-full");
        try (FaultRig rig = new FaultRig(dir, "P", 4 * FaultRig.CHUNK_BYTES, dir.resolve("victim.cow"), List.of());
                LogCapture log = new LogCapture()) {
            rig.mustWrite("victim", 0, 8, random);
            rig.mustWrite("victim", 9, 1, random);
            Faults cow = rig.faultsOf("victim.cow");
            int mark = cow.mark();
            rig.mustFailWrite("victim", 16, 8, random);
            assertInvalidatedAlone(
                    rig, log, InvalidationCause.NO_SPACE, "COW " + faulty(rig.victimCow) + " is full (32 sectors)");
            assertNothingWrittenAfterTheHeader(cow, mark);
            int after = cow.mark();
            rig.exercise(random, 200, List.of("victim"));
            assertEquals(List.of(), cow.writesSince(after));
            assertReloadsInvalid(rig, log, cow);
        }
        FAULT_CASES.incrementAndGet();
        INVALIDATED.incrementAndGet();
    }
}
