package dmsnap.target;

/** The two forms of target status: {@code dmsetup status} (INFO) and {@code dmsetup table} (TABLE). */
public enum StatusType {
    INFO,
    TABLE
}
