package dmsnap.cli;

import dmsnap.control.ControlRequest;
import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap origin create}: a device with a snapshot-origin table over the whole base device. */
@Command(
        name = "create",
        description = "Create an origin device (snapshot-origin) over a base file or block device.",
        footer = {"", "Example:", "  dmsnap origin create vol /img/base"})
final class OriginCreateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ClientOptions options;

    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Parameters(index = "1", paramLabel = "DEVICE")
    Path device;

    @Override
    public Integer call() throws IOException {
        long sectors = FileDevice.probeSizeSectors(device); // the daemon may already use it (another table)
        try {
            new DaemonSteps(spec, options)
                    .run(
                            "created origin " + name + " over " + device + " (" + sectors + " sectors)",
                            new ControlRequest(
                                    "create",
                                    name,
                                    "0 " + sectors + " snapshot-origin " + device.toRealPath(),
                                    null,
                                    null,
                                    false,
                                    false,
                                    false,
                                    false,
                                    false));
            return ExitCodes.OK;
        } catch (StepFailed e) {
            return e.exitCode;
        }
    }
}
