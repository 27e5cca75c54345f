# An nbdkit Python plugin that stops a writer at a chosen write, however fast the machine:
#   nbdkit python gated_file.py file=IMAGE dir=DIR hold=N
# serves IMAGE and counts its writes; write number N creates DIR/held and then waits, not yet
# written, until a line comes through the FIFO DIR/release (which the test makes). Requests run one
# at a time, which keeps the count exact and holds every other request behind the gate too.
import os

import nbdkit

API_VERSION = 2
image = gate = None
hold = 0
writes = 0


def config(key, value):
    global image, gate, hold
    if key == "file":
        image = os.path.abspath(value)
    elif key == "dir":
        gate = os.path.abspath(value)
    elif key == "hold":
        hold = int(value)
    else:
        raise RuntimeError("unknown parameter " + key)


def config_complete():
    if image is None or gate is None or hold < 1:
        raise RuntimeError("file=, dir= and hold=N (N >= 1) are required")


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def open(readonly):
    return os.open(image, os.O_RDONLY if readonly else os.O_RDWR)


def close(fd):
    os.close(fd)


def get_size(fd):
    return os.fstat(fd).st_size


def pread(fd, buf, offset, flags):
    buf[:] = os.pread(fd, len(buf), offset)


def pwrite(fd, buf, offset, flags):
    global writes
    writes += 1
    if writes == hold:
        os.close(os.open(os.path.join(gate, "held"), os.O_WRONLY | os.O_CREAT, 0o644))
        release = os.open(os.path.join(gate, "release"), os.O_RDONLY)  # waits for the test's end of it
        try:
            os.read(release, 64)
        finally:
            os.close(release)
    os.pwrite(fd, buf, offset)


def flush(fd, flags):
    os.fdatasync(fd)
