"""NBD I/O for failing-devices.sh (libnbd), checked against a model: MODEL/<device>.img holds what
each device must read. Each command prints one line and exits 0 when the I/O did what was asked
(ok, or the expected EIO), 1 otherwise.

  snapshot MODEL ORIGIN NAME          the model of a new snapshot NAME of ORIGIN (a copy of it)
  write SOCK MODEL DEV OFFSET LEN SEED write LEN random bytes (from SEED): must succeed; the model learns them
  writes SOCK MODEL DEV FIRST COUNT SEED   COUNT writes of 4 KiB at chunks FIRST.. (stride 4 KiB)
  read SOCK MODEL DEV OFFSET LEN       read: must succeed and match the model
  eio SOCK DEV read|write OFFSET LEN   the request must fail with EIO
  verify SOCK MODEL DEV                the whole device matches the model
  hammer SOCK DEV STOPFILE             writes and reads back random 4 KiB blocks until STOPFILE exists;
                                       prints the count; any error or mismatch fails
"""
import errno
import os
import random
import shutil
import sys

import nbd


def connect(sock, dev):
    h = nbd.NBD()
    h.connect_uri("nbd+unix:///%s?socket=%s" % (dev, sock))
    return h


def model_path(model, dev):
    return os.path.join(model, dev + ".img")


def model_write(model, dev, offset, data):
    with open(model_path(model, dev), "r+b") as f:
        f.seek(offset)
        f.write(data)


def model_read(model, dev, offset, length):
    with open(model_path(model, dev), "rb") as f:
        f.seek(offset)
        return f.read(length)


def is_eio(e):
    # libnbd's Error.errno is the errno's name ("EIO") in this binding, a number in others.
    return e.errno in ("EIO", errno.EIO)


def fail(message):
    print(message, file=sys.stderr)
    return 1


def main(argv):
    cmd = argv[1]
    if cmd == "snapshot":
        model, origin, name = argv[2:5]
        shutil.copyfile(model_path(model, origin), model_path(model, name))
        print("ok")
        return 0
    if cmd in ("write", "writes"):
        sock, model, dev = argv[2:5]
        rng = random.Random(int(argv[7]))
        h = connect(sock, dev)
        if cmd == "write":
            todo = [(int(argv[5]), int(argv[6]))]
        else:
            todo = [((int(argv[5]) + i) * 4096, 4096) for i in range(int(argv[6]))]
        for offset, length in todo:
            data = bytes(rng.getrandbits(8) for _ in range(16)) * (length // 16)
            try:
                h.pwrite(data, offset)
            except nbd.Error as e:
                return fail("write %s at %d+%d failed: %s" % (dev, offset, length, e))
            model_write(model, dev, offset, data)
        h.flush()
        print("ok")
        return 0
    if cmd == "read":
        sock, model, dev = argv[2:5]
        offset, length = int(argv[5]), int(argv[6])
        got = connect(sock, dev).pread(length, offset)
        if got != model_read(model, dev, offset, length):
            return fail("read %s at %d+%d: not what the model says" % (dev, offset, length))
        print("ok")
        return 0
    if cmd == "eio":
        sock, dev, op = argv[2:5]
        offset, length = int(argv[5]), int(argv[6])
        h = connect(sock, dev)
        try:
            if op == "read":
                h.pread(length, offset)
            else:
                h.pwrite(b"\xee" * length, offset)
        except nbd.Error as e:
            if is_eio(e):
                print("EIO")
                return 0
            return fail("%s of %s failed, but not with EIO: %s" % (op, dev, e))
        return fail("%s of %s at %d+%d succeeded" % (op, dev, offset, length))
    if cmd == "verify":
        sock, model, dev = argv[2:5]
        h = connect(sock, dev)
        size = h.get_size()
        step = 1 << 20
        for offset in range(0, size, step):
            length = min(step, size - offset)
            if h.pread(length, offset) != model_read(model, dev, offset, length):
                return fail("%s differs from the model in [%d, %d)" % (dev, offset, offset + length))
        print("ok")
        return 0
    if cmd == "hammer":
        sock, dev, stop = argv[2:5]
        h = connect(sock, dev)
        size = h.get_size()
        rng = random.Random(16)
        count = 0
        while not os.path.exists(stop):
            offset = rng.randrange(size // 4096) * 4096
            data = bytes([rng.getrandbits(8)]) * 4096
            h.pwrite(data, offset)
            if h.pread(4096, offset) != data:
                return fail("%s: read back differs at %d" % (dev, offset))
            count += 1
        h.flush()
        print(count)
        return 0
    print("unknown command " + cmd)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
