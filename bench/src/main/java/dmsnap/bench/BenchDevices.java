package dmsnap.bench;

import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Where benchmarks find their files: {@code -Ddmsnap.bench.file=PATH} (a pre-filled file). */
final class BenchDevices {
    private BenchDevices() {}

    /** The benchmark file, which must exist and hold real (allocated) data. */
    static Path benchFile() throws IOException {
        String name = System.getProperty("dmsnap.bench.file");
        if (name == null || name.isBlank()) {
            throw new IOException(
                    "set -Ddmsnap.bench.file=PATH to a pre-filled file (bench/device-vs-fio.sh makes one)");
        }
        Path path = Path.of(name);
        if (!Files.isRegularFile(path) && !Files.exists(path)) {
            throw new IOException(path + " does not exist");
        }
        return path;
    }

    /** A device manager with the snapshot targets over {@code copier}. */
    static dmsnap.device.DeviceManager engine(dmsnap.store.copy.ChunkCopier copier) {
        return new dmsnap.device.DeviceManager(
                dmsnap.snapshot.SnapshotTargets.register(
                        dmsnap.target.TargetTypes.withBasicTargets(), new dmsnap.snapshot.Registry(), copier),
                new dmsnap.device.BackingDevices());
    }

    /** Removes every device of {@code dm}, then the files of {@code dir} and {@code dir}. */
    static void tearDown(dmsnap.device.DeviceManager dm, Path dir) throws Exception {
        for (dmsnap.device.MappedDevice d : dm.list()) {
            dm.remove(d.name(), true);
        }
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    /** A fresh directory under {@code -Ddmsnap.bench.dir} (default: the temp directory). */
    static Path scratchDir(String prefix) throws IOException {
        return Files.createTempDirectory(
                Path.of(System.getProperty("dmsnap.bench.dir", System.getProperty("java.io.tmpdir"))), prefix);
    }

    static FileDevice openDirect(Path path) throws IOException {
        return FileDevice.open(path);
    }

    /**
     * Writes a persistent COW (chunk 8) holding {@code exceptions} exceptions in the kernel's
     * layout, as a sparse file: header, full areas, terminator. Old chunks are scattered over 2^32
     * when {@code scattered}, else 0, 1, 2, ...; new chunks ascend as the kernel allocates them.
     */
    static void writeCowWithExceptions(Path cow, long exceptions, boolean scattered) throws IOException {
        long epa = 256;
        long areas = exceptions / epa + 1;
        long chunks = 2 + exceptions + areas;
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(cow.toFile(), "rw")) {
            f.setLength(chunks * 4096);
        }
        try (java.nio.channels.FileChannel ch =
                java.nio.channels.FileChannel.open(cow, java.nio.file.StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer header = java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            header.putInt(0x70416e53).putInt(1).putInt(1).putInt(8).flip();
            ch.write(header, 0);
            java.nio.ByteBuffer area = java.nio.ByteBuffer.allocate(4096).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            long nextNew = 2;
            long written = 0;
            for (long k = 0; k < areas; k++) {
                area.clear();
                for (int i = 0; i < epa && written < exceptions; i++, written++) {
                    if (nextNew % (epa + 1) == 1) {
                        nextNew++;
                    }
                    area.putLong(scattered ? written * 2654435761L % (1L << 32) : written)
                            .putLong(nextNew++);
                }
                while (area.hasRemaining()) {
                    area.put((byte) 0);
                }
                area.flip();
                ch.write(area, (1 + k * (epa + 1)) * 4096);
            }
            ch.force(true);
        }
    }
}
