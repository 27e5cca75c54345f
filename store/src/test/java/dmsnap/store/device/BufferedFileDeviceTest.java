package dmsnap.store.device;

import dmsnap.store.testing.DeviceContract;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;

/** The contract on a regular file through the page cache. */
class BufferedFileDeviceTest extends DeviceContract {
    @TempDir
    Path dir;

    @Override
    protected Device openDevice(long sizeBytes) throws IOException {
        return FileDevice.open(TempFiles.sparse(dir, "device.img", sizeBytes), FileDevice.Option.BUFFERED);
    }
}
