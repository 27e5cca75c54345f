package dmsnap.store;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dmsnap.ffm.Errno;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.FaultyDevice;
import dmsnap.store.testing.FaultyDevice.Op;
import dmsnap.store.testing.FaultyDevice.Request;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.Executor;
import org.junit.jupiter.api.Test;

/** {@link AllocateAhead}: when extents are reserved, which ones, and what a failure does (nothing to the store). */
class AllocateAheadTest {
    private static final long MIB = 1 << 20;
    /** A 32 MiB COW: extents of 2 MiB. */
    private static final long COW = 32 * MIB;

    /** Runs the reservations when the test says. */
    private static final class ByHand implements Executor {
        final ArrayDeque<Runnable> tasks = new ArrayDeque<>();

        @Override
        public void execute(Runnable task) {
            tasks.add(task);
        }

        int runAll() {
            int n = 0;
            while (!tasks.isEmpty()) {
                tasks.poll().run();
                n++;
            }
            return n;
        }
    }

    private final ByHand executor = new ByHand();
    private final FaultyDevice cow = new FaultyDevice(new MemoryDevice("cow", COW)).reservesBlocks();
    private final AllocateAhead ahead = new AllocateAhead(cow, executor);

    private static Request reserved(long from, long length) {
        return new Request(Op.ALLOCATE, from, length);
    }

    @Test
    void extentsAreASixteenthOfTheCowBetweenOneAnd64MiB() {
        assertEquals(MIB, AllocateAhead.extentBytes(8 * MIB));
        assertEquals(MIB, AllocateAhead.extentBytes(24 * MIB));
        assertEquals(2 * MIB, AllocateAhead.extentBytes(COW));
        assertEquals(16 * MIB, AllocateAhead.extentBytes(256 * MIB));
        assertEquals(64 * MIB, AllocateAhead.extentBytes(1L << 30));
        assertEquals(64 * MIB, AllocateAhead.extentBytes(1L << 40));
    }

    @Test
    void theNextExtentIsReservedWhenLessThanHalfOfOneIsLeftAheadOfTheStore() {
        ahead.allocated(128 << 10); // the header, area 0 and a data chunk of 64 KiB
        assertEquals(1, executor.runAll());
        assertEquals(List.of(reserved(128 << 10, 2 * MIB)), cow.reservedRanges());
        ahead.allocated(MIB);
        ahead.allocated(MIB + (128 << 10)); // half an extent left: not due yet
        assertEquals(0, executor.runAll());
        ahead.allocated(MIB + (192 << 10));
        assertEquals(1, executor.runAll());
        assertEquals(
                List.of(reserved(128 << 10, 2 * MIB), reserved((128 << 10) + 2 * MIB, 2 * MIB)),
                cow.reservedRanges(),
                "contiguous");
        assertEquals((128 << 10) + 4 * MIB, ahead.frontierBytes());
    }

    @Test
    void oneReservationRunsAtATimeAndCatchesUpWithTheStore() {
        ahead.allocated(64 << 10);
        ahead.allocated(5 * MIB); // while the first has not run: no second task
        assertEquals(1, executor.runAll());
        assertEquals(
                List.of(reserved(5 * MIB, 2 * MIB)),
                cow.reservedRanges(),
                "what the store used meanwhile is not reserved any more");
    }

    @Test
    void theLastExtentEndsAtTheEndOfTheCowAndNothingIsAskedAfterIt() {
        ahead.allocated(COW - 3 * MIB);
        executor.runAll();
        ahead.allocated(COW - 2 * MIB + (64 << 10));
        executor.runAll();
        assertEquals(List.of(reserved(COW - 3 * MIB, 2 * MIB), reserved(COW - MIB, MIB)), cow.reservedRanges());
        ahead.allocated(COW);
        assertEquals(0, executor.runAll(), "the COW is reserved to its end");
    }

    @Test
    void noRoomSkipsTheExtentAndTheNextIsTriedWhenItIsDue() {
        cow.failWith(Errno.ENOSPC).failWhen(r -> r.op() == Op.ALLOCATE);
        ahead.allocated(128 << 10);
        assertEquals(1, executor.runAll());
        assertEquals(1, cow.injectedFaults(), "tried once");
        ahead.allocated(MIB);
        assertEquals(0, executor.runAll(), "not again for the same extent");
        cow.heal(); // room again
        ahead.allocated(MIB + (192 << 10));
        assertEquals(1, executor.runAll());
        assertEquals(List.of(reserved((128 << 10) + 2 * MIB, 2 * MIB)), cow.reservedRanges());
    }

    @Test
    void aFileSystemWithoutFallocateTurnsItOffForGood() {
        cow.failWith(Errno.EOPNOTSUPP).failWhen(r -> r.op() == Op.ALLOCATE);
        ahead.allocated(128 << 10);
        executor.runAll();
        cow.heal();
        ahead.allocated(10 * MIB);
        ahead.allocated(20 * MIB);
        assertEquals(0, executor.runAll());
        assertEquals(List.of(), cow.reservedRanges());
    }

    @Test
    void aDeviceWithNothingToReserveIsNotAskedAgainUnlessItGrows() {
        FaultyDevice memory = new FaultyDevice(new MemoryDevice("memory", COW)); // allocate: false
        AllocateAhead none = new AllocateAhead(memory, executor);
        none.allocated(64 << 10);
        assertEquals(1, executor.runAll());
        long operations = memory.operations();
        for (long end = MIB; end <= COW; end += MIB) {
            none.allocated(end);
        }
        assertEquals(0, executor.runAll());
        assertEquals(operations, memory.operations(), "a background reservation counts no operation");
    }

    @Test
    void nothingIsReservedAfterClose() {
        ahead.close();
        ahead.allocated(MIB);
        assertEquals(0, executor.runAll());
        AllocateAhead never = new AllocateAhead(cow, null);
        never.allocated(MIB);
        assertEquals(List.of(), cow.reservedRanges());
    }
}
