package dmsnap.device;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Suspend for a mapped device: after {@link #suspend()} returns no I/O is in flight and none
 * starts until {@link #resume()}; I/O arriving meanwhile waits (it is parked, not failed), as
 * with dm's suspend. Table swaps and handovers happen only while suspended.
 */
public final class IoGate {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    /** Guarded by lock. */
    private long inFlight;

    private boolean suspended;
    /** Threads parked while suspended; guarded by lock. */
    private int parked;

    /** Enters the gate, waiting while the device is suspended. Pair with {@link #exit()}. */
    public void enter() throws InterruptedException {
        lock.lock();
        try {
            awaitResumedLocked();
            inFlight++;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Enters unless that would wait: false while the device is suspended, or while another thread
     * holds the gate's lock (a suspend may be under way). Pair a true with {@link #exit()}.
     */
    public boolean tryEnter() {
        if (!lock.tryLock()) {
            return false;
        }
        try {
            if (suspended) {
                return false;
            }
            inFlight++;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Waits while the device is suspended (without entering). */
    public void awaitResumed() throws InterruptedException {
        lock.lock();
        try {
            awaitResumedLocked();
        } finally {
            lock.unlock();
        }
    }

    private void awaitResumedLocked() throws InterruptedException {
        if (!suspended) {
            return;
        }
        parked++;
        try {
            while (suspended) {
                changed.await();
            }
        } finally {
            parked--;
        }
    }

    public void exit() {
        lock.lock();
        try {
            if (--inFlight == 0) {
                changed.signalAll();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Blocks new I/O and waits for I/O in flight to finish. Idempotent. */
    public void suspend() throws InterruptedException {
        lock.lock();
        try {
            suspended = true;
            while (inFlight > 0) {
                changed.await();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Lets parked and new I/O through. */
    public void resume() {
        lock.lock();
        try {
            suspended = false;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    public boolean isSuspended() {
        lock.lock();
        try {
            return suspended;
        } finally {
            lock.unlock();
        }
    }

    /** Threads waiting for {@link #resume()} now (to enter, or in {@link #awaitResumed()}). */
    public int parked() {
        lock.lock();
        try {
            return parked;
        } finally {
            lock.unlock();
        }
    }
}
