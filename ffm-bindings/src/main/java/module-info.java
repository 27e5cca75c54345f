/**
 * The only hand-written native calls of dmsnap: files and block devices opened with
 * {@code O_DIRECT}, positional I/O into {@link java.lang.foreign.MemorySegment}s, block ioctls,
 * mmap/msync. Every fallible call captures errno and fails with one {@link dmsnap.ffm.ErrnoException}.
 */
module dmsnap.ffm {
    requires dmsnap.jextract;
    requires org.slf4j;

    exports dmsnap.ffm;
}
