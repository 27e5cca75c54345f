package dmsnap.device;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.FileStat;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import dmsnap.store.device.Device;
import dmsnap.store.device.FileDevice;
import dmsnap.target.DeviceResolver;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The files and block devices tables name, each opened once (O_DIRECT, exclusively: see
 * {@link FileDevice}) and shared by every target that names it, like the kernel's
 * {@code dm_get_device}. A device is identified by what it is, not by how it was named: a
 * block device by its major:minor, a file by its file system and inode, so a file and a symlink
 * to it are the same device. Released when the last target lets go.
 *
 * <p>Device arguments: a path, {@code MAJOR:MINOR} of a block device, or {@code dm:NAME} for
 * another dmsnap mapped device (stacking). A path must name a regular file or a block device;
 * anything else (a FIFO, a socket, a character device, a directory) is refused from an
 * {@code O_PATH} look at it, before any open that could block. Table status prints what can be
 * loaded again: {@code major:minor} for a block device, the real path for a file, {@code dm:NAME}
 * for a mapped device (the kernel would print 253:N; that number could be a real dm device of the
 * host).
 *
 * <p>Locks: this object's monitor guards {@link #open} and each entry's {@code users}; it is
 * never held across an open of a device (which may be slow), only to find or add an entry. The
 * first user of a device opens it outside the monitor; users arriving meanwhile wait for that
 * open and share its result.
 */
public final class BackingDevices implements DeviceResolver {
    private static final Pattern MAJOR_MINOR = Pattern.compile("(\\d+):(\\d+)");

    /** Finds a mapped device by name, for {@code dm:NAME} arguments. */
    @FunctionalInterface
    public interface MappedDevices {
        MappedDevice find(String name);
    }

    private static final String DM_PREFIX = DeviceResolver.mappedArgument("");

    /** Opens the file or block device at a real path (tests put fault injection here). */
    @FunctionalInterface
    public interface Opener {
        /** Read-write. */
        Device open(Path real) throws IOException;

        /** Read-only, for a device that refuses writes (a test opener may open it read-write). */
        default Device openReadOnly(Path real) throws IOException {
            return open(real);
        }

        /**
         * Opens the file {@code located} refers to: an {@link OpenFlag#PATH} descriptor of a
         * regular file or block device at {@code located.path()}. The default opener opens
         * through it (a path replaced meanwhile cannot substitute another file); by default
         * the path is opened, which is what test openers need.
         */
        default Device open(NativeFile located, boolean readOnly) throws IOException {
            return readOnly ? openReadOnly(located.path()) : open(located.path());
        }
    }

    private final Map<Identity, Shared> open = new HashMap<>();
    private final Opener opener;
    private volatile MappedDevices mappedDevices = name -> null;

    /** Files and block devices opened as {@link FileDevice}s (O_DIRECT, exclusively). */
    public BackingDevices() {
        this(new Opener() {
            @Override
            public Device open(Path real) throws IOException {
                return FileDevice.open(real);
            }

            @Override
            public Device openReadOnly(Path real) throws IOException {
                return FileDevice.open(real, FileDevice.Option.READ_ONLY);
            }

            @Override
            public Device open(NativeFile located, boolean readOnly) throws IOException {
                return readOnly ? FileDevice.open(located, FileDevice.Option.READ_ONLY) : FileDevice.open(located);
            }
        });
    }

    /** Files and block devices opened by {@code opener} (which may wrap a {@link FileDevice}). */
    public BackingDevices(Opener opener) {
        this.opener = opener;
    }

    /**
     * One open device and its users. The fields after {@link #opened} are set once, by the user
     * that opens the device, before {@link #opened} completes; others read them after it has.
     */
    private static final class Shared {
        final Identity identity;
        final Supplier<String> canonicalName;
        /** Completes when the device is open, or exceptionally when that open failed. */
        final CompletableFuture<Void> opened = new CompletableFuture<>();
        /** Handles, and users waiting for {@link #opened}; guarded by the BackingDevices monitor. */
        int users;

        Device device;
        /** False when the device refused a read-write open and is open read-only. */
        boolean writable;

        Shared(Identity identity, Supplier<String> canonicalName) {
            this.identity = identity;
            this.canonicalName = canonicalName;
        }
    }

    /** Lets {@code dm:NAME} arguments find mapped devices (the device manager registers itself). */
    public void useMappedDevices(MappedDevices devices) {
        this.mappedDevices = devices;
    }

    /** A target's use of a backing device; closing it releases that use. */
    public final class Handle implements DeviceResolver.Handle {
        private final Shared shared;
        private boolean closed;

        private Handle(Shared shared) {
            this.shared = shared;
        }

        @Override
        public Device device() {
            return shared.device;
        }

        @Override
        public Identity identity() {
            return shared.identity;
        }

        @Override
        public String canonicalName() {
            return shared.canonicalName.get();
        }

        @Override
        public void close() throws IOException {
            synchronized (BackingDevices.this) {
                if (closed) {
                    return;
                }
                closed = true;
                release(shared);
            }
        }
    }

    /** Drops one user; the last one closes the device. Caller holds this monitor. */
    private void release(Shared shared) throws IOException {
        if (--shared.users == 0) {
            open.remove(shared.identity, shared);
            shared.device.close();
        }
    }

    /**
     * Opens (or shares) the device {@code argument} names. One open serves every user of a
     * device, so it is read-write whenever the device allows it; for {@link Access#READ} a device
     * that refuses a read-write open (a read-only loop or block device, a file without write
     * permission) is opened read-only, and a later {@link Access#WRITE} use of it is refused, as
     * the kernel's upgrade of the open mode fails then.
     *
     * @throws IOException it does not exist, is not a file or block device, someone else holds it,
     *                     or it refuses the writes {@code access} needs
     */
    @Override
    public Handle open(String argument, Access access) throws IOException {
        if (argument.startsWith(DM_PREFIX)) {
            synchronized (this) {
                return openMapped(argument.substring(DM_PREFIX.length()));
            }
        }
        Path real = resolve(argument).toRealPath();
        while (true) {
            Shared shared;
            boolean opening;
            // The real path has no link in it: one swapped in since is refused, never followed.
            try (NativeFile located = NativeFile.locateNoFollow(real)) {
                Identity identity = identify(located);
                synchronized (this) {
                    shared = open.get(identity);
                    opening = shared == null;
                    if (opening) {
                        String canonical = identity.kind() == Kind.BLOCK_DEVICE
                                ? identity.first() + ":" + identity.second()
                                : real.toString();
                        shared = new Shared(identity, () -> canonical);
                        open.put(identity, shared);
                    }
                    shared.users++;
                }
                if (opening) {
                    openDevice(shared, located, access);
                }
            }
            if (opening || awaitOpened(shared)) {
                if (access == Access.WRITE && !shared.writable) {
                    synchronized (this) {
                        release(shared);
                    }
                    throw new ErrnoException("open", Errno.EROFS, real, -1, -1);
                }
                return new Handle(shared);
            }
            // The open this call waited for failed: try again, reporting its own failure if any.
        }
    }

    /** The first user's open of {@code shared}, outside the monitor; on failure the entry goes. */
    private void openDevice(Shared shared, NativeFile located, Access access) throws IOException {
        try {
            try {
                shared.device = opener.open(located, false);
                shared.writable = true;
            } catch (ErrnoException e) {
                if (access == Access.WRITE || !refusesWrites(e)) {
                    throw e;
                }
                shared.device = opener.open(located, true);
                shared.writable = false;
            }
        } catch (IOException | RuntimeException e) {
            synchronized (this) {
                shared.users--;
                open.remove(shared.identity, shared);
            }
            shared.opened.completeExceptionally(e);
            throw e;
        }
        shared.opened.complete(null);
    }

    /** Waits for another user's open of {@code shared}; false (no longer a user) when it failed. */
    private boolean awaitOpened(Shared shared) throws IOException {
        try {
            shared.opened.get();
            return true;
        } catch (ExecutionException e) {
            synchronized (this) {
                shared.users--; // the failed opener removed the entry
            }
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            synchronized (this) {
                if (shared.opened.isDone() && !shared.opened.isCompletedExceptionally()) {
                    release(shared); // opened meanwhile: this may be its last user now
                } else {
                    shared.users--; // the opener still counts itself, or removed the entry when it failed
                }
            }
            throw new InterruptedIOException("interrupted while " + shared.canonicalName.get() + " was being opened");
        }
    }

    /** A read-write open failed because the device or file does not allow writing. */
    private static boolean refusesWrites(ErrnoException e) {
        return e.errno() == Errno.EROFS || e.errno() == Errno.EACCES || e.errno() == Errno.EPERM;
    }

    /** The device argument that names mapped device {@code name} ({@code dm:NAME}). */
    public static String mappedArgument(String name) {
        return DeviceResolver.mappedArgument(name);
    }

    /** Caller holds this monitor. */
    private Handle openMapped(String name) throws IOException {
        MappedDevice mapped = mappedDevices.find(name);
        if (mapped == null) {
            throw new NoSuchFileException(DM_PREFIX + name, null, "no mapped device " + name);
        }
        Identity identity = new Identity(Kind.MAPPED_DEVICE, DeviceManager.DM_MAJOR, mapped.minor());
        Shared shared = open.get(identity);
        if (shared == null) {
            shared = new Shared(identity, () -> DM_PREFIX + mapped.name());
            shared.device = new StackedDevice(mapped);
            shared.writable = true;
            shared.opened.complete(null);
            open.put(identity, shared);
        }
        shared.users++;
        return new Handle(shared);
    }

    /** How many distinct devices are open or being opened (for tests and metrics). */
    public synchronized int openCount() {
        return open.size();
    }

    /** Users of the device whose table status name is {@code canonicalName}, waiting ones included (tests). */
    synchronized int usersOf(String canonicalName) {
        return open.values().stream()
                .filter(s -> s.canonicalName.get().equals(canonicalName))
                .mapToInt(s -> s.users)
                .sum();
    }

    /** {@code MAJOR:MINOR} to its device node; anything else is a path. */
    static Path resolve(String argument) throws IOException {
        Matcher m = MAJOR_MINOR.matcher(argument);
        if (!m.matches()) {
            try {
                return Path.of(argument);
            } catch (java.nio.file.InvalidPathException e) {
                // NUL or an unpaired surrogate: no file has such a name.
                throw new NoSuchFileException(DeviceManager.printable(argument), null, "not a valid path");
            }
        }
        Path byNumber = Path.of("/dev/block", argument);
        if (Files.exists(byNumber)) {
            return byNumber;
        }
        Path uevent = Path.of("/sys/dev/block", argument, "uevent");
        if (Files.isReadable(uevent)) {
            for (String line : Files.readAllLines(uevent)) {
                if (line.startsWith("DEVNAME=")) {
                    return Path.of("/dev", line.substring("DEVNAME=".length()));
                }
            }
        }
        throw new NoSuchFileException(argument, null, "no block device " + argument);
    }

    /**
     * What the located path is, from statx of its {@code O_PATH} descriptor: a block device or a
     * regular file; anything else is refused here, before an open that could block (a FIFO waits
     * for a writer) or have effects (a character device's open).
     */
    private static Identity identify(NativeFile located) throws IOException {
        FileStat stat = located.stat();
        return switch (stat.type()) {
            case BLOCK_DEVICE -> new Identity(Kind.BLOCK_DEVICE, stat.rdevMajor(), stat.rdevMinor());
            case REGULAR_FILE ->
                new Identity(Kind.FILE, (long) stat.deviceMajor() << 32 | stat.deviceMinor(), stat.inode());
            default ->
                throw new IOException(located.path() + " is a " + stat.type().describe()
                        + ": a device must be a regular file or a block device");
        };
    }
}
