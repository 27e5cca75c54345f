package dmsnap.device;

import dmsnap.table.TableParser;
import dmsnap.target.TargetTypes;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * The lock order is DeviceManager, then a device's control lock: a rename holds the first while
 * it takes the renamed device's (and the devices naming it). A load holds its device's control
 * lock while its targets resolve {@code dm:NAME}, so that look-up must not need the manager's.
 */
class DeviceManagerLockTest {
    private final DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());

    @Test
    void aLoadResolvesDmNamesWithoutTheManagersLock() throws Exception {
        dm.create("lower", null, TableParser.parse("0 100 zero"));
        MappedDevice upper = dm.create("upper", null, null);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread loader;
        Thread.State state;
        synchronized (dm) { // as a rename holds it, waiting for upper's control lock
            loader = Thread.ofPlatform().start(() -> {
                try {
                    // Past DeviceManager.get (before the rename took the monitor): the load itself.
                    upper.load(TableParser.parse("0 100 linear dm:lower 0"), dm.targetTypes(), dm.backingDevices());
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            // Done, or blocked in a DeviceManager method: on the monitor this thread holds, the deadlock.
            do {
                Thread.onSpinWait();
                state = loader.getState();
            } while (state != Thread.State.TERMINATED && !(state == Thread.State.BLOCKED && inDeviceManager(loader)));
        }
        loader.join();
        assertEquals(Thread.State.TERMINATED, state, "the load waited for the manager's lock under its control lock");
        assertNull(failed.get());
        upper.resume();
        assertEquals("0 100 linear dm:lower 0\n", upper.liveTable().toString());
    }

    /** Whether {@code t} is in a method of DeviceManager (the top frame: where it is blocked). */
    private static boolean inDeviceManager(Thread t) {
        StackTraceElement[] stack = t.getStackTrace();
        return stack.length > 0 && stack[0].getClassName().equals(DeviceManager.class.getName());
    }
}
