/**
 * Safe API over the native calls dmsnap needs: {@link dmsnap.ffm.NativeFile} (an open
 * descriptor), {@link dmsnap.ffm.BlockDevices} (block ioctls), {@link dmsnap.ffm.MappedRegion}
 * (mmap/msync) and one error shape, {@link dmsnap.ffm.ErrnoException}.
 *
 * <p>No method handle, raw address or bare file descriptor crosses this package's boundary.
 * Arguments are checked before the syscall (bounds, O_DIRECT alignment), and every segment
 * passed to the kernel is kept reachable for the duration of the call. Locks: none; a
 * {@code NativeFile} may be used from many threads at once (pread/pwrite are positional),
 * and {@code close()} is idempotent.
 */
package dmsnap.ffm;
