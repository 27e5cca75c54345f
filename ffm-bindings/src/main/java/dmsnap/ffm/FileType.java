package dmsnap.ffm;

/** The kind of file behind a descriptor, from {@code stx_mode & S_IFMT}. */
public enum FileType {
    REGULAR_FILE,
    BLOCK_DEVICE,
    DIRECTORY,
    CHARACTER_DEVICE,
    FIFO,
    SOCKET,
    /** Only seen through {@link NativeFile#locateNoFollow}. */
    SYMBOLIC_LINK,
    OTHER;

    /** "regular file", "block device", ... for messages. */
    public String describe() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
    }
}
