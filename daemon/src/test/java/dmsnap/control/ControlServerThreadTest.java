package dmsnap.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.device.BackingDevices;
import dmsnap.device.DeviceManager;
import dmsnap.device.DeviceRecorder;
import dmsnap.target.TargetTypes;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's log (slf4j-simple) prints the thread before each line: a request's lines are told
 * apart by the name of the thread serving its connection, a virtual thread that has none unless given.
 */
class ControlServerThreadTest {
    @TempDir
    Path dir;

    @Test
    void eachConnectionIsServedOnANamedThread() throws Exception {
        List<String> threads = new CopyOnWriteArrayList<>();
        MergeService recording = new MergeService() {
            @Override
            public ControlResponse merge(String snapshot) {
                threads.add(Thread.currentThread().getName());
                return ControlResponse.success(List.of(), null);
            }

            @Override
            public ControlResponse status(String name) {
                return merge(name);
            }
        };
        DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());
        try (ControlServer server = new ControlServer(
                dir.resolve("control.sock"), new ControlHandler(dm, "test", DeviceRecorder.NONE, recording))) {
            ControlClient client = new ControlClient(dir.resolve("control.sock"));
            client.send(ControlRequest.of("merge", "a"));
            client.send(ControlRequest.of("merge-status", null));
        }
        assertEquals(2, threads.size());
        for (String name : threads) {
            assertTrue(name.matches("dmsnap-control-[0-9]+"), name);
        }
        assertTrue(!threads.get(0).equals(threads.get(1)), "one name per connection: " + threads);
    }
}
