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

    /** A recorded device; {@code readOnly}: its table was loaded read-only. */
    public record Recorded(String name, String uuid, String table, boolean readOnly) {
    }

    public synchronized void record(MappedDevice device) throws IOException {
        Table table = device.liveTable();
        if (table == null) {
            forget(device.name());
            return;
        }
        record(device.name(), device.uuid(), table, device.isReadOnly());
    }

    /**
     * Records {@code table} as the device's table before it is live: the merge flow records the
     * snapshot-merge table of the origin before it resumes it, so that a crash in between
     * restores the merge (from the COW), never the snapshot and the merge at once.
     */
    public synchronized void record(String name, String uuid, Table table) throws IOException {
        record(name, uuid, table, false);
    }

    private void record(String name, String uuid, Table table, boolean readOnly) throws IOException {
        Properties p = new Properties();
        if (readOnly) {
            p.setProperty("readonly", "true");
        }
        p.setProperty("name", name);
        if (uuid != null) {
            p.setProperty("uuid", uuid);
        }
        p.setProperty("table", table.toString());
        writeAtomically(name + SUFFIX, p, "dmsnap device state");
    }

    /** Writes {@code dir/fileName} atomically: temporary file, fsync, rename, fsync of the directory. */
    synchronized void writeAtomically(String fileName, Properties p, String comment) throws IOException {
        Path tmp = dir.resolve("." + fileName + ".tmp");
        try (var out = Files.newOutputStream(tmp)) {
            p.store(out, comment);
        }
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
        try {
            Files.move(tmp, dir.resolve(fileName), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the state directory " + dir + " cannot rename atomically", e);
        }
        syncDirectory();
    }

    /** Deletes {@code dir/fileName} if it exists (durably). */
    synchronized void delete(String fileName) throws IOException {
        if (Files.deleteIfExists(dir.resolve(fileName))) {
            syncDirectory();
        }
    }

    /** The properties of every {@code *suffix} file. */
    synchronized List<Properties> loadAll(String suffix) throws IOException {
        List<Properties> all = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*" + suffix)) {
            for (Path f : files) {
                Properties p = new Properties();
                try (var in = Files.newInputStream(f)) {
                    p.load(new java.io.InputStreamReader(in, StandardCharsets.ISO_8859_1));
                }
                all.add(p);
            }
        }
        return all;
    }

    public synchronized void forget(String name) throws IOException {
        delete(name + SUFFIX);
    }

    public synchronized void rename(String from, MappedDevice device) throws IOException {
        record(device);
        forget(from);
    }

    /** Every recorded device, in no particular order. */
    public synchronized List<Recorded> load() throws IOException {
        List<Recorded> all = new ArrayList<>();
        for (Properties p : loadAll(SUFFIX)) {
            all.add(new Recorded(p.getProperty("name"), p.getProperty("uuid"), p.getProperty("table"),
                    Boolean.parseBoolean(p.getProperty("readonly", "false"))));
        }
        return all;
    }

    private void syncDirectory() throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
