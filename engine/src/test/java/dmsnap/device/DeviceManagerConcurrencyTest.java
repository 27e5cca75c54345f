package dmsnap.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dmsnap.table.TableLoadException;
import dmsnap.table.TableParser;
import dmsnap.target.TargetType;
import dmsnap.target.TargetTypes;
import dmsnap.target.ZeroTarget;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;

/** Control operations on different devices, and on one, interleaved the way that once went wrong. */
class DeviceManagerConcurrencyTest {
    private final CountDownLatch inConstructor = new CountDownLatch(1);
    private final CountDownLatch proceed = new CountDownLatch(1);
    /** A thread per task: the common pool may have one worker only. */
    private final java.util.concurrent.ExecutorService threads = java.util.concurrent.Executors.newCachedThreadPool();

    @org.junit.jupiter.api.AfterEach
    void stopThreads() {
        threads.shutdownNow();
    }

    /** A target that opens {@code dm:NAME} only once the test lets it: the load holds the device's control lock meanwhile. */
    private final TargetType gated = TargetType.of("gated", "1.0.0", (context, args) -> {
        inConstructor.countDown();
        try {
            proceed.await();
            context.open("dm:" + args.next(), BackingDevices.Access.READ).close();
        } catch (InterruptedException | java.io.IOException e) {
            throw new TableLoadException("gated", e.getMessage());
        }
        return ZeroTarget.TYPE.create(context, new dmsnap.target.TargetArgs("zero", List.of()));
    });

    @Test
    void aRenameWaitingForADeviceThatIsLoadingATableNamingAnotherDeviceDoesNotDeadlock() throws Exception {
        TargetTypes types = TargetTypes.withBasicTargets();
        types.register(gated);
        DeviceManager dm = new DeviceManager(types, new BackingDevices());
        dm.create("below", null, TableParser.parse("0 8 zero"));
        dm.create("x", null, null);
        Future<?> load = CompletableFuture.runAsync(
                () -> {
                    try {
                        dm.load("x", TableParser.parse("0 8 gated below"));
                    } catch (DmException | TableLoadException e) {
                        throw new IllegalStateException(e);
                    }
                },
                threads);
        inConstructor.await(); // the load holds x's control lock
        AtomicReference<Thread> renamer = new AtomicReference<>();
        Future<?> rename = CompletableFuture.runAsync(
                () -> {
                    renamer.set(Thread.currentThread());
                    try {
                        dm.rename("x", "y");
                    } catch (DmException e) {
                        throw new IllegalStateException(e);
                    }
                },
                threads);
        awaitParkedOnALock(renamer);
        proceed.countDown(); // the load now resolves dm:below while the rename waits for x
        awaitWithoutDeadlock(load);
        awaitWithoutDeadlock(rename);
        assertEquals(
                List.of("below", "y"),
                dm.list().stream().map(MappedDevice::name).toList());
    }

    private static void awaitParkedOnALock(AtomicReference<Thread> thread) throws InterruptedException {
        while (true) {
            Thread t = thread.get();
            if (t != null
                    && (t.getState() == Thread.State.WAITING || t.getState() == Thread.State.BLOCKED)
                    && (LockSupport.getBlocker(t) != null || t.getState() == Thread.State.BLOCKED)) {
                return;
            }
            Thread.onSpinWait();
            Thread.sleep(1); // polling a condition, not waiting for time to pass
        }
    }

    /** Waits for {@code f}; fails as soon as the JVM reports a deadlock instead of hanging. */
    private static void awaitWithoutDeadlock(Future<?> f) throws Exception {
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        while (true) {
            try {
                f.get(100, TimeUnit.MILLISECONDS);
                return;
            } catch (TimeoutException notYet) {
                long[] deadlocked = threads.findDeadlockedThreads();
                if (deadlocked != null) {
                    fail("deadlock between " + deadlocked.length + " threads: "
                            + List.of(threads.getThreadInfo(deadlocked, true, true)));
                }
            }
        }
    }
}
