package dmsnap.ffm;

import dmsnap.ffm.internal.LinuxConstants;
import java.util.Set;

/** How {@link NativeFile#open} opens a file; translated to the platform's {@code O_*} bits inside. */
public enum OpenFlag {
    /** O_RDONLY. */
    READ_ONLY,
    /** O_RDWR. */
    READ_WRITE,
    /** O_CREAT (mode 0644 before umask). */
    CREATE,
    /** O_EXCL: with CREATE, fail if the file exists; on a block device, an exclusive open. */
    EXCLUSIVE,
    /** O_DIRECT: bypass the page cache; offsets, lengths and buffers must be aligned. */
    DIRECT,
    /** O_DSYNC: every write is durable when it returns. */
    DSYNC,
    /** O_NOFOLLOW: fail with ELOOP when the last component of the path is a symbolic link. */
    NO_FOLLOW,
    /**
     * O_PATH, alone or with NO_FOLLOW: a descriptor that only locates the file, for {@link
     * NativeFile#stat} and {@link NativeFile#reopen}; no I/O. Opening one never blocks (a FIFO waits for no writer)
     * and has no side effect (a device's open method is not called).
     */
    PATH;

    static int toNative(Set<OpenFlag> flags) {
        if (flags.contains(PATH)) {
            if (flags.size() != (flags.contains(NO_FOLLOW) ? 2 : 1)) {
                throw new IllegalArgumentException("PATH takes no other flag than NO_FOLLOW: " + flags);
            }
            return LinuxConstants.O_CLOEXEC
                    | LinuxConstants.O_PATH
                    | (flags.contains(NO_FOLLOW) ? LinuxConstants.O_NOFOLLOW : 0);
        }
        if (flags.contains(READ_ONLY) == flags.contains(READ_WRITE)) {
            throw new IllegalArgumentException("exactly one of READ_ONLY and READ_WRITE is needed: " + flags);
        }
        int bits = LinuxConstants.O_CLOEXEC
                | (flags.contains(READ_WRITE) ? LinuxConstants.O_RDWR : LinuxConstants.O_RDONLY);
        if (flags.contains(CREATE)) {
            bits |= LinuxConstants.O_CREAT;
        }
        if (flags.contains(EXCLUSIVE)) {
            bits |= LinuxConstants.O_EXCL;
        }
        if (flags.contains(DIRECT)) {
            bits |= LinuxConstants.O_DIRECT;
        }
        if (flags.contains(DSYNC)) {
            bits |= LinuxConstants.O_DSYNC;
        }
        if (flags.contains(NO_FOLLOW)) {
            bits |= LinuxConstants.O_NOFOLLOW;
        }
        return bits;
    }
}
