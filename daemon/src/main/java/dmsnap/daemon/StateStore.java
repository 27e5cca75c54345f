package dmsnap.daemon;

import dmsnap.device.DeviceRecorder;
import dmsnap.device.DmException;
import dmsnap.device.MappedDevice;
import dmsnap.ffm.Errno;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import dmsnap.table.Table;
import dmsnap.target.CacheMode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every device's live table, one file per device in the state directory ({@code NAME.device}:
 * uuid and table text; the file name is the device's name), deleted when the device is removed.
 * A restart restores them all (see {@link Daemon}).
 *
 * <p>As the {@link DeviceRecorder} of the control path, a change is recorded before it takes
 * effect, as LVM commits its metadata before it changes a device: the table before resume swaps
 * it in, the removal before the device goes, the new name (and the tables of the devices that
 * name it as {@code dm:NAME}, which follow it) before it is used. A change that
 * cannot be recorded (a full file system) fails with the errno and changes nothing, so every
 * acknowledged change is on disk.
 *
 * <p>A file is written atomically: a new temporary file (O_EXCL, so never through a symbolic
 * link or into someone else's file), fsync, rename over the record, fsync of the directory. A
 * rename of a device is one rename(2) of its record. The directory is an {@link OwnedDirectory}:
 * the daemon's own, and locked against a second daemon. Methods are synchronized: this object's
 * monitor guards the files and is taken last (under a device's control lock on the control path).
 */
public final class StateStore implements DeviceRecorder, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(StateStore.class);
    private static final String SUFFIX = ".device";

    private final OwnedDirectory directory;
    private final Path dir;
    private final int uid;

    /**
     * Creates the directory (0700) unless it exists, checks that it is the daemon's own (see
     * {@link OwnedDirectory}) and locks it.
     *
     * @throws IOException one line: why the directory is refused, or which daemon uses it
     */
    public StateStore(Path dir) throws IOException {
        this.directory = OwnedDirectory.claim(dir, OwnedDirectory.Kind.STATE);
        this.dir = dir;
        this.uid = OwnedDirectory.effectiveUid();
    }

    /**
     * A recorded device; {@code readOnly}: its table was loaded read-only; {@code cacheMode}: its
     * table's cache mode (null in a record written before there were modes: the daemon's default).
     */
    public record Recorded(String name, String uuid, String table, boolean readOnly, CacheMode cacheMode) {}

    public Path directory() {
        return dir;
    }

    // ---- the control path: recorded before the change takes effect --------------------------------

    @Override
    public void beforeLive(MappedDevice device, Table table, boolean readOnly, CacheMode cacheMode) throws DmException {
        try {
            record(device.name(), device.uuid(), table, readOnly, cacheMode);
        } catch (IOException e) {
            throw failure("record the new table of " + device.name(), e);
        }
    }

    @Override
    public void beforeRename(MappedDevice device, String newName, List<DeviceRecorder.Dependent> dependents)
            throws DmException {
        try {
            rename(device.name(), newName, device, dependents);
        } catch (IOException e) {
            throw failure("record the rename of " + device.name() + " to " + newName, e);
        }
    }

    @Override
    public void beforeRemove(MappedDevice device) throws DmException {
        try {
            forget(device.name());
        } catch (IOException e) {
            throw failure("forget " + device.name(), e);
        }
    }

    private DmException failure(String what, IOException e) {
        return new DmException(
                errnoOf(e),
                "cannot " + what + " in the state directory " + dir + ": " + e.getMessage() + "; nothing was changed",
                e);
    }

    /**
     * The errno of a failed file operation, EIO when it does not say. A {@link FileChannel}'s
     * calls (the directory's fsync) fail with a plain IOException whose message is strerror's text.
     */
    static Errno errnoOf(IOException e) {
        Errno errno = Errno.of(e);
        if (errno == Errno.UNKNOWN) {
            errno = Errno.withText(e.getMessage());
        }
        return errno == Errno.UNKNOWN ? Errno.EIO : errno;
    }

    // ---- records ---------------------------------------------------------------------------------

    public synchronized void record(MappedDevice device) throws IOException {
        Table table = device.liveTable();
        if (table == null) {
            forget(device.name());
            return;
        }
        record(device.name(), device.uuid(), table, device.isReadOnly(), device.cacheMode());
    }

    /**
     * Records {@code table} as the device's table before it is live: the merge flow records the
     * snapshot-merge table of the origin before it resumes it, so that a crash in between
     * restores the merge (from the COW), never the snapshot and the merge at once.
     */
    public synchronized void record(String name, String uuid, Table table) throws IOException {
        record(name, uuid, table, false, null);
    }

    /** The same, read-only when {@code readOnly}, in {@code cacheMode} (null: none recorded, the default's). */
    public synchronized void record(String name, String uuid, Table table, boolean readOnly, CacheMode cacheMode)
            throws IOException {
        writeAtomically(name + SUFFIX, properties(name, uuid, table, readOnly, cacheMode), COMMENT);
    }

    private static final String COMMENT = "dmsnap device state";

    private static Properties properties(String name, String uuid, Table table, boolean readOnly, CacheMode cacheMode) {
        Properties p = new Properties();
        if (readOnly) {
            p.setProperty("readonly", "true");
        }
        if (cacheMode != null) {
            p.setProperty("cache", cacheMode.text());
        }
        p.setProperty("name", name);
        if (uuid != null) {
            p.setProperty("uuid", uuid);
        }
        p.setProperty("table", table.toString());
        return p;
    }

    public synchronized void forget(String name) throws IOException {
        delete(name + SUFFIX);
    }

    /**
     * The record of {@code from} becomes that of {@code to} in one rename(2) (replacing a record
     * left under that name by a device that was not restored); then its name line is brought up to
     * date, which only a reader of the file needs. A device without a record gets one.
     *
     * <p>The new records of the {@code dependents} (their tables naming {@code dm:TO}) are
     * written to temporary files first: that is all the space the step needs, and when it fails
     * they are deleted and nothing changed. Then only rename(2)s follow, back to back: the
     * device's record, the dependents' records, one fsync of the directory.
     */
    private synchronized void rename(
            String from, String to, MappedDevice device, List<DeviceRecorder.Dependent> dependents) throws IOException {
        List<Path[]> staged = new ArrayList<>(); // {temporary file, record}
        Path source = dir.resolve(from + SUFFIX);
        boolean recorded = Files.isRegularFile(source, LinkOption.NOFOLLOW_LINKS);
        try {
            for (DeviceRecorder.Dependent d : dependents) {
                MappedDevice user = d.device();
                String file = user.name() + SUFFIX;
                staged.add(new Path[] {
                    stage(
                            file,
                            properties(user.name(), user.uuid(), d.liveTable(), user.isReadOnly(), user.cacheMode()),
                            COMMENT),
                    dir.resolve(file)
                });
            }
            if (recorded) {
                move(source, dir.resolve(to + SUFFIX));
            } else if (device.liveTable() == null) {
                forget(to);
            } else {
                record(to, device.uuid(), device.liveTable(), device.isReadOnly(), device.cacheMode());
            }
        } catch (IOException | RuntimeException e) {
            for (Path[] s : staged) {
                try {
                    Files.deleteIfExists(s[0]); // ours: made by stage
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
        for (Path[] s : staged) {
            try {
                move(s[0], s[1]);
            } catch (IOException e) {
                // After the rename itself there is no going back: say what a restart will miss.
                log.error(
                        "{}: its record in {} still names dm:{}, which is now {}: {}",
                        s[1].getFileName(),
                        dir,
                        from,
                        to,
                        e.getMessage());
                Files.deleteIfExists(s[0]);
            }
        }
        if (recorded) {
            syncDirectory();
            if (device.liveTable() != null) {
                try {
                    record(to, device.uuid(), device.liveTable(), device.isReadOnly(), device.cacheMode());
                } catch (IOException e) {
                    log.warn(
                            "{}: renamed in {}, but its record still says name={} inside: {}",
                            to,
                            dir,
                            from,
                            e.getMessage());
                }
            }
        } else if (!staged.isEmpty()) {
            syncDirectory();
        }
    }

    /** Every recorded device, in no particular order. */
    public synchronized List<Recorded> load() throws IOException {
        List<Recorded> all = new ArrayList<>();
        for (Map.Entry<String, Properties> e : read(SUFFIX)) {
            String file = e.getKey();
            Properties p = e.getValue();
            String name = file.substring(0, file.length() - SUFFIX.length());
            all.add(new Recorded(
                    name,
                    p.getProperty("uuid"),
                    p.getProperty("table"),
                    Boolean.parseBoolean(p.getProperty("readonly", "false")),
                    cacheMode(name, p.getProperty("cache"))));
        }
        return all;
    }

    /** A recorded cache mode; an unknown one is reported and the default used (null). */
    private CacheMode cacheMode(String name, String text) {
        if (text == null) {
            return null;
        }
        try {
            return CacheMode.parse(text);
        } catch (IllegalArgumentException e) {
            log.warn("{}: its record in {} has {}: the default mode is used", name, dir, e.getMessage());
            return null;
        }
    }

    // ---- files -----------------------------------------------------------------------------------

    /** Writes {@code dir/fileName} atomically: new temporary file, fsync, rename, fsync of the directory. */
    synchronized void writeAtomically(String fileName, Properties p, String comment) throws IOException {
        Path tmp = stage(fileName, p, comment);
        try {
            move(tmp, dir.resolve(fileName));
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(tmp); // ours: created by stage
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        syncDirectory();
    }

    /**
     * Writes the new content of {@code dir/fileName} to its temporary file (fsynced), which a
     * rename over the record then makes the record; on failure nothing is left.
     */
    private Path stage(String fileName, Properties p, String comment) throws IOException {
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        p.store(text, comment);
        byte[] bytes = text.toByteArray();
        Path tmp = dir.resolve("." + fileName + ".tmp");
        removeStaleTemporary(tmp);
        // O_EXCL: a file or symbolic link put there since is never opened, let alone truncated.
        NativeFile f = NativeFile.open(tmp, OpenFlag.READ_WRITE, OpenFlag.CREATE, OpenFlag.EXCLUSIVE);
        try {
            try (f;
                    Arena arena = Arena.ofConfined()) {
                f.write(0, arena.allocateFrom(ValueLayout.JAVA_BYTE, bytes));
                f.fsync();
            }
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(tmp); // ours: created above
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return tmp;
    }

    /** A temporary file a crash left behind is removed, if it is a regular file of ours; anything else is refused. */
    private void removeStaleTemporary(Path tmp) throws IOException {
        if (!Files.exists(tmp, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Map<String, Object> a = Files.readAttributes(tmp, "unix:isRegularFile,uid", LinkOption.NOFOLLOW_LINKS);
        if (!(Boolean) a.get("isRegularFile") || (Integer) a.get("uid") != uid) {
            throw new IOException(
                    tmp + " is in the way and is not a regular file of uid " + uid + " (a symbolic link?): remove it");
        }
        Files.delete(tmp);
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the state directory " + to.getParent() + " cannot rename atomically", e);
        }
    }

    /** Deletes {@code dir/fileName} if it exists (durably). */
    synchronized void delete(String fileName) throws IOException {
        if (Files.deleteIfExists(dir.resolve(fileName))) {
            syncDirectory();
        }
    }

    /** The properties of every {@code *suffix} file. */
    synchronized List<Properties> loadAll(String suffix) throws IOException {
        return read(suffix).stream().map(Map.Entry::getValue).toList();
    }

    /** Every regular {@code *suffix} file by name, with its properties; anything else is reported and skipped. */
    private List<Map.Entry<String, Properties>> read(String suffix) throws IOException {
        List<Map.Entry<String, Properties>> all = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*" + suffix)) {
            for (Path f : files) {
                if (!Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) {
                    log.warn("{}: not a regular file (a symbolic link?): ignored", f);
                    continue;
                }
                Properties p = new Properties();
                try (var in = Files.newInputStream(f, LinkOption.NOFOLLOW_LINKS)) {
                    p.load(new InputStreamReader(in, StandardCharsets.ISO_8859_1));
                }
                all.add(Map.entry(f.getFileName().toString(), p));
            }
        }
        return all;
    }

    private void syncDirectory() throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }

    /** Releases the state directory's lock; idempotent. */
    @Override
    public void close() throws IOException {
        directory.close();
    }
}
