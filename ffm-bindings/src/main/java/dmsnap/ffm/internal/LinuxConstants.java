package dmsnap.ffm.internal;

import dmsnap.jextract.linux.GeneratedFor;
import dmsnap.jextract.linux.Linux;

/**
 * Flag values and ioctl numbers for the running architecture, read once from the
 * jextract-generated bindings (never typed by hand: {@code O_DIRECT} differs between x86-64 and
 * arm64). Loading this class on an architecture the bindings were not generated for fails with
 * {@link UnsupportedOperationException}.
 */
public final class LinuxConstants {
    static {
        requireSupportedPlatform();
    }

    public static final int O_RDONLY = Linux.O_RDONLY();
    public static final int O_RDWR = Linux.O_RDWR();
    public static final int O_CREAT = Linux.O_CREAT();
    public static final int O_EXCL = Linux.O_EXCL();
    public static final int O_DIRECT = Linux.O_DIRECT();
    public static final int O_DSYNC = Linux.O_DSYNC();
    public static final int O_CLOEXEC = Linux.O_CLOEXEC();
    public static final int O_NOFOLLOW = Linux.O_NOFOLLOW();
    public static final int O_PATH = Linux.O_PATH();

    public static final long BLKGETSIZE64 = Linux.BLKGETSIZE64();
    public static final long BLKSSZGET = Linux.BLKSSZGET();
    public static final long BLKPBSZGET = Linux.BLKPBSZGET();
    public static final long BLKDISCARD = Linux.BLKDISCARD();
    public static final long BLKZEROOUT = Linux.BLKZEROOUT();

    public static final int PROT_READ = Linux.PROT_READ();
    public static final int PROT_WRITE = Linux.PROT_WRITE();
    public static final int MAP_SHARED = Linux.MAP_SHARED();
    public static final int MAP_PRIVATE = Linux.MAP_PRIVATE();
    public static final int MAP_ANONYMOUS = Linux.MAP_ANONYMOUS();
    public static final int MADV_HUGEPAGE = Linux.MADV_HUGEPAGE();
    public static final int MADV_RANDOM = Linux.MADV_RANDOM();
    public static final int MADV_WILLNEED = Linux.MADV_WILLNEED();
    public static final int MS_SYNC = Linux.MS_SYNC();

    public static final int LOCK_SH = Linux.LOCK_SH();
    public static final int LOCK_EX = Linux.LOCK_EX();
    public static final int LOCK_NB = Linux.LOCK_NB();
    public static final int LOCK_UN = Linux.LOCK_UN();

    public static final int FALLOC_FL_KEEP_SIZE = Linux.FALLOC_FL_KEEP_SIZE();
    public static final int FALLOC_FL_PUNCH_HOLE = Linux.FALLOC_FL_PUNCH_HOLE();
    public static final int FALLOC_FL_ZERO_RANGE = Linux.FALLOC_FL_ZERO_RANGE();

    public static final int SEEK_DATA = Linux.SEEK_DATA();
    public static final int SEEK_HOLE = Linux.SEEK_HOLE();

    public static final int RWF_NOWAIT = Linux.RWF_NOWAIT();

    public static final int AT_FDCWD = Linux.AT_FDCWD();
    public static final int AT_EMPTY_PATH = Linux.AT_EMPTY_PATH();
    public static final int STATX_BASIC_STATS = Linux.STATX_BASIC_STATS();
    public static final int STATX_DIOALIGN = Linux.STATX_DIOALIGN();

    public static final int S_IFMT = Linux.S_IFMT();
    public static final int S_IFREG = Linux.S_IFREG();
    public static final int S_IFBLK = Linux.S_IFBLK();
    public static final int S_IFDIR = Linux.S_IFDIR();
    public static final int S_IFCHR = Linux.S_IFCHR();
    public static final int S_IFIFO = Linux.S_IFIFO();
    public static final int S_IFSOCK = Linux.S_IFSOCK();
    public static final int S_IFLNK = Linux.S_IFLNK();

    private LinuxConstants() {}

    /** The {@code os.arch} the bindings were generated for. */
    public static String generatedArch() {
        return GeneratedFor.OS_ARCH;
    }

    /**
     * Refuses to run where the generated constants would be wrong: another OS or another
     * architecture than the one jextract ran on.
     */
    public static void requireSupportedPlatform() {
        String os = System.getProperty("os.name", "?");
        String arch = System.getProperty("os.arch", "?");
        if (!os.equals("Linux") || !arch.equals(GeneratedFor.OS_ARCH)) {
            throw new UnsupportedOperationException(
                    "dmsnap's native bindings were generated for Linux on " + GeneratedFor.OS_ARCH
                            + " (" + GeneratedFor.HEADERS + "); this machine is " + os + " on " + arch
                            + ". Regenerate them on this machine with jextract/regenerate.sh and rebuild.");
        }
    }
}
