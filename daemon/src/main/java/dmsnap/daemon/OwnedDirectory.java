package dmsnap.daemon;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.FileType;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A directory the daemon keeps its files in (the run directory, the state directory), and the
 * lock in it that makes one daemon its user. The daemon usually runs as root and is told these
 * paths: it must never be led into changing the mode of, truncating or writing anything else.
 * So an existing directory must be a real directory (a symbolic link is refused, the last
 * component included), owned by the daemon's user, and writable by nobody else; the run
 * directory's mode must be exactly 0700, or with {@code --nbd-group} exactly 0710 with that
 * group (its members may reach {@code nbd.sock} in it, not list it, and every other file in it
 * is the daemon's only). No directory above it may be writable by others unless it is sticky
 * (as /tmp): else the path could be swapped between the checks and the use. A directory is never chmodded unless this class has
 * just created it. The lock file ({@value #LOCK_FILE}) is opened without following a symbolic
 * link, must be a regular file, and is held with {@code flock}, which belongs to the open file:
 * a second daemon is refused, also one in the same JVM. It stays in place when released
 * (deleting it would let a daemon that opened it just before the delete run beside one that
 * creates a new one).
 */
final class OwnedDirectory implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OwnedDirectory.class);
    static final String LOCK_FILE = "daemon.lock";
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");
    /** A missing directory above one of ours, made for it (mkdir -p). */
    private static final Set<PosixFilePermission> PARENT = PosixFilePermissions.fromString("rwxr-xr-x");
    /** The run directory with {@code --nbd-group}: the group may pass through to the NBD socket. */
    private static final Set<PosixFilePermission> GROUP_TRAVERSE = PosixFilePermissions.fromString("rwx--x---");

    /** Which directory, for messages, and whether only the exact mode 0700 is accepted. */
    enum Kind {
        RUN("run directory", "is running with run directory", true),
        STATE("state directory", "is using state directory", false);

        final String what;
        final String heldBy;
        final boolean exactlyOwnerOnly;

        Kind(String what, String heldBy, boolean exactlyOwnerOnly) {
            this.what = what;
            this.heldBy = heldBy;
            this.exactlyOwnerOnly = exactlyOwnerOnly;
        }
    }

    private final NativeFile lock;

    private OwnedDirectory(NativeFile lock) {
        this.lock = lock;
    }

    /**
     * Creates {@code dir} (mode 0700) unless it exists, checks that it is the daemon's own, and
     * takes its lock.
     *
     * @throws IOException one line saying why the directory is refused or which daemon holds it
     */
    static OwnedDirectory claim(Path dir, Kind kind) throws IOException {
        return claim(dir, kind, null);
    }

    /**
     * As {@link #claim(Path, Kind)}; with a {@code group} (the run directory with
     * {@code --nbd-group}) the directory has mode 0710 and that group.
     */
    static OwnedDirectory claim(Path dir, Kind kind, GroupPrincipal group) throws IOException {
        if (group != null && kind != Kind.RUN) {
            throw new IllegalArgumentException("only the run directory is shared with a group");
        }
        checkAncestors(dir, kind);
        createIfMissing(dir, group);
        check(dir, kind, group);
        NativeFile lock = openLock(dir, kind);
        boolean ok = false;
        try {
            if (!lock.tryLock(true)) {
                throw new IOException("another dmsnap daemon (pid " + holder(lock) + ") " + kind.heldBy + " " + dir);
            }
            writePid(lock.path());
            ok = true;
            return new OwnedDirectory(lock);
        } finally {
            if (!ok) {
                lock.close();
            }
        }
    }

    /** Releases the lock; idempotent. */
    @Override
    public void close() throws IOException {
        lock.close();
    }

    /** The effective uid of this process (field 2 of the Uid line of /proc/self/status). */
    static int effectiveUid() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("Uid:")) {
                return Integer.parseInt(line.substring(4).strip().split("\\s+")[1]);
            }
        }
        throw new IOException("/proc/self/status has no Uid line");
    }

    /** Creates {@code dir} with mode 0700 (0710 and {@code group} with one) unless something is there. */
    private static void createIfMissing(Path dir, GroupPrincipal group) throws IOException {
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Path parent = dir.toAbsolutePath().getParent();
        if (parent != null) {
            // Never writable by group or others whatever the umask: see checkAncestors.
            Files.createDirectories(parent, PosixFilePermissions.asFileAttribute(PARENT));
        }
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
        } catch (FileAlreadyExistsException e) {
            return; // made by someone else meanwhile: checked like any existing directory
        }
        // Our own new directory: undo what the umask took (never done to an existing one).
        PosixFileAttributeView view =
                Files.getFileAttributeView(dir, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
        view.setPermissions(OWNER_ONLY);
        if (group != null) {
            try {
                view.setGroup(group); // before the group may pass: never another group's for a moment
            } catch (IOException e) {
                throw new IOException(
                        "cannot give the run directory " + dir + " to group " + group.getName() + ": " + e.getMessage()
                                + " (the daemon's user must be root or a member of it)",
                        e);
            }
            view.setPermissions(GROUP_TRAVERSE);
        }
    }

    /**
     * Every existing directory above {@code dir}, as named and as it really is (through symbolic
     * links), must be writable by its owner only, or sticky as /tmp is: else someone else could
     * move the daemon's directory aside and put one of their own in its place between the checks
     * below and the daemon's use of it. Missing ones are made by {@link #createIfMissing}.
     */
    private static void checkAncestors(Path dir, Kind kind) throws IOException {
        Set<Path> ancestors = new java.util.LinkedHashSet<>();
        Path deepest = null;
        for (Path a = dir.toAbsolutePath().normalize().getParent(); a != null; a = a.getParent()) {
            ancestors.add(a);
            if (deepest == null && Files.exists(a)) {
                deepest = a;
            }
        }
        if (deepest != null) {
            for (Path a = deepest.toRealPath(); a != null; a = a.getParent()) {
                ancestors.add(a);
            }
        }
        for (Path a : ancestors) {
            int mode;
            try {
                mode = (Integer) Files.getAttribute(a, "unix:mode"); // through a link: the directory it names
            } catch (NoSuchFileException e) {
                continue; // made by createIfMissing, with the umask's mode
            }
            if ((mode & 0022) != 0 && (mode & 01000) == 0) {
                throw new IOException(kind.what + " " + dir + " is inside " + a + ", which others may write to (mode "
                        + String.format("%04o", mode & 07777) + ", not sticky): they could put another directory in its"
                        + " place; chmod go-w " + a + " or give a directory elsewhere");
            }
        }
    }

    private static void check(Path dir, Kind kind, GroupPrincipal group) throws IOException {
        Map<String, Object> a;
        try {
            a = Files.readAttributes(
                    dir, "unix:isSymbolicLink,isDirectory,uid,permissions,mode,group", LinkOption.NOFOLLOW_LINKS);
        } catch (NoSuchFileException e) {
            throw new IOException(kind.what + " " + dir + " vanished while it was being created");
        }
        if ((Boolean) a.get("isSymbolicLink")) {
            throw new IOException(kind.what + " " + dir + " is a symbolic link: give the real directory");
        }
        if (!(Boolean) a.get("isDirectory")) {
            throw new IOException(kind.what + " " + dir + " is not a directory");
        }
        int owner = (Integer) a.get("uid");
        int uid = effectiveUid();
        if (owner != uid) {
            throw new IOException(kind.what + " " + dir + " is owned by uid " + owner + ", not by this daemon's uid "
                    + uid + ": give a directory of its own");
        }
        @SuppressWarnings("unchecked")
        Set<PosixFilePermission> permissions = (Set<PosixFilePermission>) a.get("permissions");
        String mode = String.format("%04o", (Integer) a.get("mode") & 07777); // as ls and chmod show it
        if (group != null && !(permissions.equals(GROUP_TRAVERSE) && group.equals(a.get("group")))) {
            String actual = ((GroupPrincipal) a.get("group")).getName();
            throw new IOException(kind.what + " " + dir + " has mode " + mode + " and group " + actual
                    + ", not 0710 and"
                    + " group " + group.getName() + " (--nbd-group: the group reaches nbd.sock through it): chgrp "
                    + group.getName() + " and chmod 0710 it if it is the daemon's own, or give a new one");
        }
        if (group == null && kind.exactlyOwnerOnly && !permissions.equals(OWNER_ONLY)) {
            throw new IOException(kind.what + " " + dir + " has mode " + mode + ", not 0700: chmod 0700 it if it is"
                    + " the daemon's own, or give a new one (made with mode 0700)");
        }
        if (permissions.contains(PosixFilePermission.GROUP_WRITE)
                || permissions.contains(PosixFilePermission.OTHERS_WRITE)) {
            throw new IOException(kind.what + " " + dir + " is writable by others (mode " + mode + "): chmod go-w it if"
                    + " it is the daemon's own, or give a new one (made with mode 0700)");
        }
    }

    private static NativeFile openLock(Path dir, Kind kind) throws IOException {
        Path file = dir.resolve(LOCK_FILE);
        NativeFile lock;
        try {
            lock = NativeFile.open(file, EnumSet.of(OpenFlag.READ_WRITE, OpenFlag.CREATE, OpenFlag.NO_FOLLOW));
        } catch (ErrnoException e) {
            if (e.errno() == Errno.ELOOP) {
                throw new IOException(
                        "the lock file " + file + " of the " + kind.what + " is a symbolic link:" + " remove it", e);
            }
            throw e;
        }
        if (lock.type() != FileType.REGULAR_FILE) {
            lock.close();
            throw new IOException(
                    "the lock file " + file + " of the " + kind.what + " is not a regular file:" + " remove it");
        }
        return lock;
    }

    /**
     * The holder writes its pid for the message of a refused daemon; only that message needs it,
     * so a full file system does not stop the daemon. A truncate through a second descriptor is
     * harmless: flock belongs to the open file, not to the process as fcntl locks do.
     */
    private static void writePid(Path file) {
        try (FileChannel pid = FileChannel.open(
                file, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING, LinkOption.NOFOLLOW_LINKS)) {
            pid.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8)));
        } catch (IOException e) {
            log.warn("{}: cannot write this daemon's pid into it: {}", file, e.getMessage());
        }
    }

    /** The pid the holder wrote, or "?" when it has not (yet). */
    private static String holder(NativeFile lock) throws ErrnoException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(32);
            long n = lock.read(0, buffer);
            String text =
                    new String(buffer.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8).strip();
            return text.isEmpty() ? "?" : text.lines().findFirst().orElse("?");
        }
    }
}
