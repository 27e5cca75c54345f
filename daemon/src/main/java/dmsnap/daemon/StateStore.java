package dmsnap.daemon;

import dmsnap.device.MappedDevice;
import dmsnap.table.Table;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * Every device's live table, one file per device in the state directory ({@code NAME.device}:
 * uuid and table text), written atomically (temporary file, fsync, rename, fsync of the
 * directory) whenever the live table changes, deleted when the device is removed. A restart
 * restores them all (see {@link Daemon}).
 */
public final class StateStore {
    private static final String SUFFIX = ".device";

    private final Path dir;

    public StateStore(Path dir) throws IOException {
        this.dir = Files.createDirectories(dir);
    }

    /** A recorded device. */
    public record Recorded(String name, String uuid, String table) {
    }

    public synchronized void record(MappedDevice device) throws IOException {
        Table table = device.liveTable();
        if (table == null) {
            forget(device.name());
            return;
        }
        Properties p = new Properties();
        p.setProperty("name", device.name());
        if (device.uuid() != null) {
            p.setProperty("uuid", device.uuid());
        }
        p.setProperty("table", table.toString());
        Path tmp = dir.resolve("." + device.name() + SUFFIX + ".tmp");
        try (var out = Files.newOutputStream(tmp)) {
            p.store(out, "dmsnap device state");
        }
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
        try {
            Files.move(tmp, file(device.name()), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the state directory " + dir + " cannot rename atomically", e);
        }
        syncDirectory();
    }

    public synchronized void forget(String name) throws IOException {
        if (Files.deleteIfExists(file(name))) {
            syncDirectory();
        }
    }

    public synchronized void rename(String from, MappedDevice device) throws IOException {
        record(device);
        forget(from);
    }

    /** Every recorded device, in no particular order. */
    public synchronized List<Recorded> load() throws IOException {
        List<Recorded> all = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*" + SUFFIX)) {
            for (Path f : files) {
                Properties p = new Properties();
                try (var in = Files.newInputStream(f)) {
                    p.load(new java.io.InputStreamReader(in, StandardCharsets.ISO_8859_1));
                }
                all.add(new Recorded(p.getProperty("name"), p.getProperty("uuid"), p.getProperty("table")));
            }
        }
        return all;
    }

    private Path file(String name) {
        return dir.resolve(name + SUFFIX);
    }

    private void syncDirectory() throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
