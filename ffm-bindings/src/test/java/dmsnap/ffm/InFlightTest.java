package dmsnap.ffm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class InFlightTest {

    /** Waits until {@code t} is parked (WAITING or TIMED_WAITING); fails after 60 s (it spins or runs on). */
    static void awaitParked(Thread t) throws InterruptedException {
        long end = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
        while (t.getState() != Thread.State.WAITING && t.getState() != Thread.State.TIMED_WAITING) {
            if (System.nanoTime() > end) {
                throw new AssertionError(t.getName() + " did not park within 60 s: " + t.getState());
            }
            Thread.yield();
        }
    }

    @Test
    void closeParksUntilTheLastCallReturnsAndRefusesNewOnes() throws Exception {
        InFlight calls = new InFlight("/dev/test");
        calls.acquire();
        calls.acquire();
        AtomicBoolean closedFirst = new AtomicBoolean();
        Thread closer = Thread.ofPlatform().name("closer").start(() -> closedFirst.set(calls.close()));
        awaitParked(closer);
        assertFalse(calls.isOpen());
        assertFalse(calls.tryAcquire(), "no new call once close began");
        IllegalStateException e = assertThrows(IllegalStateException.class, calls::acquire);
        assertEquals("/dev/test is closed", e.getMessage());
        assertEquals(2, calls.inProgress());
        calls.release();
        awaitParked(closer); // one call still in progress: the closer stays parked
        assertTrue(closer.isAlive());
        calls.release();
        closer.join();
        assertTrue(closedFirst.get());
        assertEquals(0, calls.inProgress());
        assertFalse(calls.close(), "idempotent: a second close is not the one that closed");
    }

    @Test
    void closeWithNothingInFlightReturnsAtOnce() {
        InFlight calls = new InFlight("x");
        assertTrue(calls.tryAcquire());
        calls.release();
        assertTrue(calls.close());
        assertFalse(calls.isOpen());
    }

    @Test
    void anInterruptDoesNotCutTheWaitShortAndIsKept() throws Exception {
        InFlight calls = new InFlight("x");
        calls.acquire();
        AtomicBoolean interruptedAfter = new AtomicBoolean();
        Thread closer = Thread.ofPlatform().start(() -> {
            calls.close();
            interruptedAfter.set(Thread.currentThread().isInterrupted());
        });
        awaitParked(closer);
        closer.interrupt();
        awaitParked(closer); // still waiting for the call
        assertEquals(1, calls.inProgress());
        calls.release();
        closer.join();
        assertTrue(interruptedAfter.get());
    }
}
