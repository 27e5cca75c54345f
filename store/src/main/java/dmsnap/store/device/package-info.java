/**
 * Block-device abstraction under the exception stores and targets: {@link
 * dmsnap.store.device.Device} with {@link dmsnap.store.device.FileDevice} (a regular file or a
 * block device through {@code dmsnap.ffm.NativeFile}, O_DIRECT optional) and {@link
 * dmsnap.store.device.MemoryDevice} (arena-backed). Mirrors the role of {@code struct dm_dev}
 * plus the block layer's bio interface in the kernel. Locks: none at this level; devices are
 * safe for concurrent I/O to any ranges.
 */
package dmsnap.store.device;
