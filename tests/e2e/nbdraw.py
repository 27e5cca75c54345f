"""A small asyncio NBD client (fixed newstyle, NBD_OPT_GO, simple replies) for the end-to-end load
tests: it lets a test do what real clients do not (stop reading replies, hang up half-way through a
request) and keeps hundreds of connections in one process. Also the block content model the
tests verify reads against."""
import asyncio
import socket
import struct
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
INFO_EXPORT = 0
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
FLAG_FUA = 1
CLIENT_FLAGS = 3  # FIXED_NEWSTYLE | NO_ZEROES
BLOCK = 4096
ERRNO_NAMES = {1: "EPERM", 5: "EIO", 12: "ENOMEM", 22: "EINVAL", 28: "ENOSPC", 108: "ESHUTDOWN"}


class NbdError(Exception):
    pass


def request_header(cmd, offset, length, cookie=0, flags=0):
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie, offset, length)


def go_option(export):
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    return struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data


def check_greeting(head):
    magic, opt, _flags = struct.unpack(">QQH", head)
    if magic != NBDMAGIC or opt != IHAVEOPT:
        raise NbdError("bad greeting %r" % head)


def parse_option_reply(head):
    magic, _opt, rtype, length = struct.unpack(">QIII", head)
    if magic != REP_MAGIC:
        raise NbdError("bad option reply magic 0x%x" % magic)
    return rtype, length


async def sock_recv_exactly(loop, sock, n):
    """n bytes from a non-blocking socket; EOF first is a ConnectionError."""
    parts = []
    while n:
        b = await loop.sock_recv(sock, n)
        if not b:
            raise ConnectionError("end of input from the server")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


async def raw_connect(path):
    """A non-blocking Unix socket connected to path (for clients that misbehave)."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        await loop.sock_connect(s, path)
    except BaseException:
        s.close()
        raise
    return s


async def raw_handshake(sock, export):
    """NBD_OPT_GO on a raw socket; returns the export size."""
    loop = asyncio.get_running_loop()
    check_greeting(await sock_recv_exactly(loop, sock, 18))
    await loop.sock_sendall(sock, struct.pack(">I", CLIENT_FLAGS) + go_option(export))
    size = None
    while True:
        rtype, length = parse_option_reply(await sock_recv_exactly(loop, sock, 20))
        payload = await sock_recv_exactly(loop, sock, length) if length else b""
        if rtype == REP_ACK:
            return size
        if rtype & 0x80000000:
            raise NbdError("NBD_OPT_GO %s refused (0x%x): %s" % (export, rtype, payload.decode(errors="replace")))
        if rtype == REP_INFO and struct.unpack(">H", payload[:2])[0] == INFO_EXPORT:
            size = struct.unpack(">Q", payload[2:10])[0]


class Connection:
    """A well-behaved client: requests may overlap; each request() returns (error, data) and its latency
    is in the pending table while it runs (see oldest_pending)."""

    def __init__(self, path, export):
        self.path = path
        self.export = export
        self.size = None
        self.pending = {}  # cookie -> (future, reply length, start time)
        self.cookie = 0
        self.lost = None

    async def open(self):
        self.r, self.w = await asyncio.open_unix_connection(self.path, limit=1 << 21)
        check_greeting(await self.r.readexactly(18))
        self.w.write(struct.pack(">I", CLIENT_FLAGS) + go_option(self.export))
        await self.w.drain()
        while True:
            rtype, length = parse_option_reply(await self.r.readexactly(20))
            payload = await self.r.readexactly(length) if length else b""
            if rtype == REP_ACK:
                break
            if rtype & 0x80000000:
                raise NbdError("NBD_OPT_GO %s refused (0x%x): %s" % (self.export, rtype, payload.decode(errors="replace")))
            if rtype == REP_INFO and struct.unpack(">H", payload[:2])[0] == INFO_EXPORT:
                self.size = struct.unpack(">Q", payload[2:10])[0]
        self.replies = asyncio.get_running_loop().create_task(self._read_replies())
        return self

    async def _read_replies(self):
        try:
            while True:
                magic, error, cookie = struct.unpack(">IIQ", await self.r.readexactly(16))
                if magic != SIMPLE_REPLY_MAGIC:
                    raise NbdError("bad reply magic 0x%x" % magic)
                entry = self.pending.pop(cookie, None)
                if entry is None:
                    raise NbdError("reply to unknown cookie %d" % cookie)
                fut, length, _ = entry
                data = await self.r.readexactly(length) if error == 0 and length else b""
                if not fut.done():
                    fut.set_result((error, data))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, NbdError) as e:
            self.lost = e
            for fut, _, _ in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection lost: %r" % (e,)))
            self.pending.clear()

    def oldest_pending(self, now):
        """Seconds the oldest request in flight has been waiting, 0 when none."""
        return max((now - t for _, _, t in self.pending.values()), default=0.0)

    async def request(self, cmd, offset, length, payload=None, flags=0):
        """Sends one request and waits for its reply: (error, data, seconds)."""
        if self.lost is not None:
            raise ConnectionError("connection lost: %r" % (self.lost,))
        self.cookie += 1
        cookie = self.cookie
        fut = asyncio.get_running_loop().create_future()
        start = time.monotonic()
        self.pending[cookie] = (fut, length if cmd == CMD_READ else 0, start)
        if payload is None:
            self.w.write(request_header(cmd, offset, length, cookie, flags))
        else:
            self.w.writelines((request_header(cmd, offset, length, cookie, flags), payload))
        await self.w.drain()
        error, data = await fut
        return error, data, time.monotonic() - start

    async def close(self, timeout=60):
        """NBD_CMD_DISC, then waits until the server has closed its end (it has let go of the export then)."""
        try:
            if self.lost is None:
                self.w.write(request_header(CMD_DISC, 0, 0))
                await self.w.drain()
            await asyncio.wait_for(self.replies, timeout)
        finally:
            self.w.close()


# ---- block content ----------------------------------------------------------------------------------
# A device's content is a function of a few numbers per 4 KiB block: a base image has stamp(base id,
# block, 0) in every 16th block and zeroes elsewhere (mostly sparse); a write puts stamp(writer's device
# id, block, version) in each block it covers; WRITE_ZEROES puts zeroes. The model of a block is absent
# (the base), ZERO, or (device id, version).
ZERO = (0, 0)
ZERO_BLOCK = bytes(BLOCK)


def stamp(dev_id, block, version):
    return struct.pack("<IIQ", dev_id, block, version) * (BLOCK // 16)


def base_block(base_id, block):
    return stamp(base_id, block, 0) if block % 16 == 0 else ZERO_BLOCK


def write_base_image(path, base_id, size):
    with open(path, "wb") as f:
        f.truncate(size)
        for block in range(0, size // BLOCK, 16):
            f.seek(block * BLOCK)
            f.write(stamp(base_id, block, 0))


def expected(model, base_id, first_block, count):
    parts = []
    for b in range(first_block, first_block + count):
        m = model.get(b)
        if m is None:
            parts.append(base_block(base_id, b))
        elif m == ZERO:
            parts.append(ZERO_BLOCK)
        else:
            parts.append(stamp(m[0], b, m[1]))
    return b"".join(parts)


def describe_block(data):
    """What a 4 KiB block (or a part of one, such as a sector) holds, for error messages."""
    if data.count(0) == len(data):
        return "zeroes"
    dev_id, block, version = struct.unpack("<IIQ", data[:16])
    if data == stamp(dev_id, block, version)[:len(data)]:
        return "stamp(dev %d, block %d, version %d)" % (dev_id, block, version)
    return "unrecognised bytes %s..." % data[:16].hex()


def first_difference(got, want, first_block):
    for i in range(0, min(len(got), len(want)), BLOCK):
        if got[i:i + BLOCK] != want[i:i + BLOCK]:
            return "block %d holds %s, expected %s" % (first_block + i // BLOCK, describe_block(got[i:i + BLOCK]),
                                                      describe_block(want[i:i + BLOCK]))
    return "length %d, expected %d" % (len(got), len(want))
