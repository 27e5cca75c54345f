/*
 * Umbrella header for dmsnap's jextract bindings: everything dmsnap.ffm needs from libc and the
 * kernel UAPI (open flags, positional I/O, preadv2 and its RWF_NOWAIT, fsync, fallocate, flock,
 * statx, block-device ioctls, mmap/msync, errno values). jextract/includes.txt picks the symbols; the gcc probe test in
 * ffm-bindings compiles this same header to check the generated values.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
