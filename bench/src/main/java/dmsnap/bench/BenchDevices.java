package dmsnap.bench;

import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Where benchmarks find their files: {@code -Ddmsnap.bench.file=PATH} (a pre-filled file). */
final class BenchDevices {
    private BenchDevices() {
    }

    /** The benchmark file, which must exist and hold real (allocated) data. */
    static Path benchFile() throws IOException {
        String name = System.getProperty("dmsnap.bench.file");
        if (name == null || name.isBlank()) {
            throw new IOException("set -Ddmsnap.bench.file=PATH to a pre-filled file (bench/device-vs-fio.sh makes one)");
        }
        Path path = Path.of(name);
        if (!Files.isRegularFile(path) && !Files.exists(path)) {
            throw new IOException(path + " does not exist");
        }
        return path;
    }

    static FileDevice openDirect(Path path) throws IOException {
        return FileDevice.open(path);
    }
}
