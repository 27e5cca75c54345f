package dmsnap.store.device;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.store.testing.DeviceContract;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;

/** The contract on a regular file in the build's temp directory, with O_DIRECT. */
class FileDeviceTest extends DeviceContract {
    @TempDir
    Path dir;

    @Override
    protected Device openDevice(long sizeBytes) throws IOException {
        String why = TempFiles.directIoUnavailable(dir);
        assumeTrue(why == null, why);
        return FileDevice.open(TempFiles.sparse(dir, "device.img", sizeBytes));
    }
}
