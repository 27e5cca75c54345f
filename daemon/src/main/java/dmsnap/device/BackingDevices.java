package dmsnap.device;

import dmsnap.ffm.Errno;
import dmsnap.ffm.ErrnoException;
import dmsnap.ffm.FileStat;
import dmsnap.ffm.FileType;
import dmsnap.ffm.NativeFile;
import dmsnap.ffm.OpenFlag;
import dmsnap.store.device.Device;
import dmsnap.store.device.FileDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
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
 * another dmsnap mapped device (stacking). Table status prints what can be loaded again:
 * {@code major:minor} for a block device, the real path for a file, {@code dm:NAME} for a
 * mapped device (the kernel would print 253:N; that number could be a real dm device of the
 * host). Locks: this object's monitor guards the open set.
 */
public final class BackingDevices {
    private static final Pattern MAJOR_MINOR = Pattern.compile("(\\d+):(\\d+)");

    /** What a device argument names. */
    public enum Kind { BLOCK_DEVICE, FILE, MAPPED_DEVICE }

    /** What makes two device arguments the same device. */
    public record Identity(Kind kind, long first, long second) {
    }

    /** Finds a mapped device by name, for {@code dm:NAME} arguments. */
    @FunctionalInterface
    public interface MappedDevices {
        MappedDevice find(String name);
    }

    private static final String DM_PREFIX = "dm:";

    /** Opens the file or block device at a real path (tests put fault injection here). */
    @FunctionalInterface
    public interface Opener {
        /** Read-write. */
        Device open(Path real) throws IOException;

        /** Read-only, for a device that refuses writes (a test opener may open it read-write). */
        default Device openReadOnly(Path real) throws IOException {
            return open(real);
        }
    }

    /**
     * How a target uses a device (the kernel's {@code dm_get_device} mode): {@code READ} for one
     * that never writes it (a {@code snapshot}'s origin, any device of a read-only table).
     */
    public enum Access { READ, WRITE }

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
        });
    }

    /** Files and block devices opened by {@code opener} (which may wrap a {@link FileDevice}). */
    public BackingDevices(Opener opener) {
        this.opener = opener;
    }

    private final class Shared {
        final Identity identity;
        final Device device;
        final java.util.function.Supplier<String> canonicalName;
        /** False when the device refused a read-write open and is open read-only. */
        final boolean writable;
        int users;

        Shared(Identity identity, Device device, java.util.function.Supplier<String> canonicalName, boolean writable) {
            this.identity = identity;
            this.device = device;
            this.canonicalName = canonicalName;
            this.writable = writable;
        }
    }

    /** Lets {@code dm:NAME} arguments find mapped devices (the device manager registers itself). */
    public void useMappedDevices(MappedDevices devices) {
        this.mappedDevices = devices;
    }

    /** A target's use of a backing device; closing it releases that use. */
    public final class Handle implements AutoCloseable {
        private final Shared shared;
        private boolean closed;

        private Handle(Shared shared) {
            this.shared = shared;
        }

        public Device device() {
            return shared.device;
        }

        public Identity identity() {
            return shared.identity;
        }

        /** How table status names it: {@code major:minor} for a block device, the real path for a file. */
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
                if (--shared.users == 0) {
                    open.remove(shared.identity);
                    shared.device.close();
                }
            }
        }
    }

    /** Opens (or shares) the device {@code argument} names, for writing. */
    public synchronized Handle open(String argument) throws IOException {
        return open(argument, Access.WRITE);
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
    public synchronized Handle open(String argument, Access access) throws IOException {
        if (argument.startsWith(DM_PREFIX)) {
            return openMapped(argument.substring(DM_PREFIX.length()));
        }
        Path path = resolve(argument);
        Path real = path.toRealPath();
        Identity identity = identify(real);
        Shared shared = open.get(identity);
        if (shared == null) {
            Device device;
            boolean writable = true;
            try {
                device = opener.open(real);
            } catch (ErrnoException e) {
                if (access == Access.WRITE || !refusesWrites(e)) {
                    throw e;
                }
                device = opener.openReadOnly(real);
                writable = false;
            }
            String canonical = identity.kind() == Kind.BLOCK_DEVICE
                    ? identity.first() + ":" + identity.second() : real.toString();
            shared = new Shared(identity, device, () -> canonical, writable);
            open.put(identity, shared);
        } else if (access == Access.WRITE && !shared.writable) {
            throw new ErrnoException("open", Errno.EROFS, real, -1, -1);
        }
        shared.users++;
        return new Handle(shared);
    }

    /** A read-write open failed because the device or file does not allow writing. */
    private static boolean refusesWrites(ErrnoException e) {
        return e.errno() == Errno.EROFS || e.errno() == Errno.EACCES || e.errno() == Errno.EPERM;
    }

    private Handle openMapped(String name) throws IOException {
        MappedDevice mapped = mappedDevices.find(name);
        if (mapped == null) {
            throw new java.nio.file.NoSuchFileException(DM_PREFIX + name, null, "no mapped device " + name);
        }
        Identity identity = new Identity(Kind.MAPPED_DEVICE, DeviceManager.DM_MAJOR, mapped.minor());
        Shared shared = open.get(identity);
        if (shared == null) {
            shared = new Shared(identity, new StackedDevice(mapped), () -> DM_PREFIX + mapped.name(), true);
            open.put(identity, shared);
        }
        shared.users++;
        return new Handle(shared);
    }

    /** How many distinct devices are open (for tests and metrics). */
    public synchronized int openCount() {
        return open.size();
    }

    /** {@code MAJOR:MINOR} to its device node; anything else is a path. */
    static Path resolve(String argument) throws IOException {
        Matcher m = MAJOR_MINOR.matcher(argument);
        if (!m.matches()) {
            return Path.of(argument);
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

    /** statx through a short read-only open (no lock, no O_DIRECT) to learn what the path is. */
    private static Identity identify(Path real) throws IOException {
        try (NativeFile probe = NativeFile.open(real, OpenFlag.READ_ONLY)) {
            FileStat stat = probe.stat();
            if (stat.type() == FileType.BLOCK_DEVICE) {
                return new Identity(Kind.BLOCK_DEVICE, stat.rdevMajor(), stat.rdevMinor());
            }
            return new Identity(Kind.FILE, (long) stat.deviceMajor() << 32 | stat.deviceMinor(), stat.inode());
        }
    }
}
