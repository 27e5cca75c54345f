#!/usr/bin/python3
"""libnbd writers with a durability model, for tests/e2e/restart.sh and tests/e2e/crash.sh: connections
to an origin and its snapshot doing writes, FUA writes, WRITE_ZEROES (--zeroes) and FLUSHes (aio,
several in flight on each), across daemon stops and kills that the scripts make at random moments.

The model: a block is written by one request at a time, so its writes are ordered. A write is
durable once acknowledged with FUA, or acknowledged before a FLUSH on the same export was sent and
that FLUSH completed (CAN_MULTI_CONN: a flush covers the writes completed on every connection).
When the connections break the driver reconnects (retrying until the daemon is back) and reads
every block of both views: each 512-byte sector must hold its block's last durable content or a
later write's (a write in flight may or may not have landed; an acknowledged but unflushed one may
be lost), never anything older and never anything else; the snapshot never an origin write. What
was read becomes the block's durable content, and the load goes on.

Progress goes to STATUS as JSON lines: {"event": "running", "cycle": N} once the load runs after
the Nth reconnect, {"event": "verified", "cycle": N, ...counts} after the check that precedes it,
{"event": "writing", "cycle": N} at the first write acknowledged after it (so a kill can wait for one);
SIGTERM ends the load, and the driver flushes, verifies once more, writes {"event": "done", ...totals}
and prints them. Exit status 1 when anything durable was lost.
"""
import argparse
import json
import os
import random
import select
import signal
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdraw import BLOCK, ZERO_BLOCK, base_block, describe_block, stamp  # noqa: E402

MIB = 1 << 20
SECTOR = 512
SECTORS = BLOCK // SECTOR
ISSUED, ACKED = 0, 1
ZERO = ("zero",)


class Entry:
    """One write of a block: its content key, whether it was acknowledged, and how."""
    __slots__ = ("key", "state", "ack_seq", "fua", "durable")

    def __init__(self, key, durable=False):
        self.key, self.state, self.ack_seq, self.fua, self.durable = key, ISSUED, None, False, durable


class Export:
    def __init__(self, name, dev_id, base_id, write_blocks, verify_blocks):
        self.name, self.id, self.base_id = name, dev_id, base_id
        self.write_blocks = write_blocks
        self.verify_blocks = verify_blocks
        # hist[b]: the block's writes since the last verification; the first is what was read then.
        self.hist = {b: [Entry(("base", base_id), durable=True)] for b in verify_blocks}
        self.busy = set()
        self.version = 0
        self.ack_seq = 0        # acknowledgements so far
        self.flushed_seq = 0    # acknowledgements before this one are durable (a completed flush)

    def content(self, b, key):
        """A block's bytes for a content key: ("base", id), ZERO, (device id, version) or
        ("mixed", one key per sector) when a verification read a block whose sectors differ."""
        kind = key[0]
        if kind == "base":
            return base_block(key[1], b)
        if kind == "zero":
            return ZERO_BLOCK
        if kind == "mixed":
            return b"".join(self.content(b, k)[s * SECTOR:(s + 1) * SECTOR] for s, k in enumerate(key[1]))
        return stamp(key[0], b, key[1])

    def durable(self, e):
        return e.durable or e.state == ACKED and (e.fua or e.ack_seq < self.flushed_seq)

    def judge(self, b, got):
        """The candidates of block b (its last durable write and every later one) and, per sector, the
        newest candidate that sector holds; None for a sector that holds none of them."""
        hist = self.hist[b]
        last_durable = max(i for i, w in enumerate(hist) if self.durable(w))
        candidates = hist[last_durable:]
        contents = [self.content(b, w.key) for w in candidates]
        whole = [j for j, c in enumerate(contents) if c == got]
        if whole:
            return last_durable, candidates, [whole[-1]] * SECTORS
        held = []
        for s in range(SECTORS):
            part = slice(s * SECTOR, (s + 1) * SECTOR)
            held.append(max((j for j, c in enumerate(contents) if c[part] == got[part]), default=None))
        return last_durable, candidates, held


class Driver:
    def __init__(self, a):
        self.a = a
        self.rnd = random.Random(a.seed)
        half = a.size // BLOCK // 2
        quarter = half // 2
        verify = range(0, 3 * quarter)
        # The origin writes the first half; the snapshot the middle half: half of it overlaps.
        self.exports = [Export(a.origin, 1, 1, range(0, half), verify),
                        Export(a.snapshot, 2, 1, range(quarter, quarter + half), verify)]
        self.stopping = False
        self.cycle = 0
        self.writing = False    # a write was acknowledged in this cycle
        self.counts = dict(issued=0, acked=0, fua=0, zeroes=0, flushes=0, blocks=0, writes_checked=0,
                           verified=0, torn=0, lost=0, acked_not_kept=0, in_flight_landed=0,
                           in_flight_not_landed=0, reconnects=0)
        self.status = open(a.status, "a")

    def report(self, **event):
        self.status.write(json.dumps(event) + "\n")
        self.status.flush()

    # ---- connections -----------------------------------------------------------------------------
    def uri(self, e):
        return "nbd+unix:///%s?socket=%s" % (e.name, self.a.sock)

    def connect_all(self):
        """New handles for every export, retrying while the daemon is away (deadline)."""
        deadline = time.monotonic() + self.a.reconnect_deadline
        tries = 0
        while True:
            handles = []
            try:
                for e in self.exports:
                    for _ in range(self.a.connections):
                        h = nbd.NBD()
                        h.connect_uri(self.uri(e))
                        handles.append(Conn(h, e))
                return handles, tries
            except nbd.Error as err:
                for c in handles:
                    c.drop()
                tries += 1
                if time.monotonic() > deadline:
                    raise SystemExit("writers: no connection within %d s: %s" % (self.a.reconnect_deadline, err))
                time.sleep(0.1)

    # ---- verification ----------------------------------------------------------------------------
    def verify(self, why):
        """Reads both views; checks every sector against its block's candidates; the result becomes durable."""
        problems = []
        kept = dict(lost=0, acked_not_kept=0, verified=0, landed=0, not_landed=0, blocks=0, writes_checked=0, torn=0)
        for e in self.exports:
            h = nbd.NBD()
            h.connect_uri(self.uri(e))
            blocks = list(e.verify_blocks)
            for start in range(0, len(blocks), 256):
                run = blocks[start:start + 256]
                data = h.pread(len(run) * BLOCK, run[0] * BLOCK)
                for i, b in enumerate(run):
                    got = data[i * BLOCK:(i + 1) * BLOCK]
                    problem = self.check_block(e, b, got, kept)
                    if problem:
                        problems.append(problem)
            h.shutdown()
        for k in ("lost", "acked_not_kept", "verified", "blocks", "writes_checked", "torn"):
            self.counts[k] += kept[k]
        self.counts["in_flight_landed"] += kept["landed"]
        self.counts["in_flight_not_landed"] += kept["not_landed"]
        for p in problems[:10]:
            print("writers: LOST after %s: %s" % (why, p), file=sys.stderr)
        for e in self.exports:
            e.ack_seq = e.flushed_seq = 0
            e.busy.clear()
        return kept

    def check_block(self, e, b, got, kept):
        """Judges one block read back; counts it in kept; a problem's description, or None."""
        last_durable, candidates, held = e.judge(b, got)
        bad = [s for s, j in enumerate(held) if j is None]
        if bad:
            kept["lost"] += 1
            s = bad[0]
            what = describe_block(got[s * SECTOR:(s + 1) * SECTOR])
            if e is self.exports[1] and what.startswith("stamp(dev %d," % self.exports[0].id) and "version 0)" not in what:
                what += ": an origin write in the snapshot"
            return ("%s block %d sector %d (%d of %d sectors wrong): holds %s; last durable write %s, %d later candidate(s)"
                    % (e.name, b, s, len(bad), SECTORS, what, candidates[0].key, len(candidates) - 1))
        kept["blocks"] += 1
        kept["writes_checked"] += len(e.hist[b]) - 1
        if last_durable > 0:
            kept["verified"] += 1   # the block's newest durable write (or a later one) is there
        if len(set(held)) > 1:
            kept["torn"] += 1       # sectors of different writes: each still a candidate
            key = ("mixed", tuple(candidates[j].key for j in held))
        else:
            key = candidates[held[0]].key
        last_acked = max((j for j, x in enumerate(candidates) if x.state == ACKED), default=None)
        if last_acked is not None and min(held) < last_acked:
            kept["acked_not_kept"] += 1
        for j, x in enumerate(candidates[1:], 1):
            if x.state == ISSUED:
                kept["landed" if j in held else "not_landed"] += 1
        e.hist[b] = [Entry(key, durable=True)]
        return None

    # ---- load ------------------------------------------------------------------------------------
    def issue(self, c):
        e = c.export
        if self.rnd.random() < 0.1:
            seq = e.ack_seq
            cookie = c.h.aio_flush()
            c.inflight[cookie] = ("flush", seq, None)
            self.counts["flushes"] += 1
            return
        fua = self.rnd.random() < 0.17
        zero = self.rnd.random() < self.a.zeroes
        for _ in range(8):
            first = self.rnd.choice(e.write_blocks)
            if first not in e.busy:
                break
        else:
            return
        n = 1
        # Now and then a long run (384 KiB: whole new chunks of at least 256 KiB at every chunk size
        # drawn), which writeback writes around the page cache (PageCacheBypass).
        limit = 96 if self.rnd.random() < 0.02 else self.rnd.choice((1, 1, 2, 4))
        while n < limit and first + n in e.write_blocks and first + n not in e.busy:
            n += 1
        e.version += 1
        entries = []
        for b in range(first, first + n):
            w = Entry(ZERO if zero else (e.id, e.version))
            w.fua = fua
            e.hist[b].append(w)
            e.busy.add(b)
            entries.append((b, w))
        flags = nbd.CMD_FLAG_FUA if fua else 0
        if zero:
            cookie = c.h.aio_zero(n * BLOCK, first * BLOCK, flags=flags)
            buf = None
        else:
            # bytes, not nbd.Buffer: libnbd 1.14's python aio_pwrite never frees a Buffer (4 KiB leaked per write).
            buf = b"".join(stamp(e.id, b, e.version) for b in range(first, first + n))
            cookie = c.h.aio_pwrite(buf, first * BLOCK, flags=flags)
        c.inflight[cookie] = ("write", entries, buf)
        self.counts["issued"] += 1
        self.counts["fua"] += fua
        self.counts["zeroes"] += zero

    def retire(self, c):
        """Collects the commands of c that completed; False when the connection broke."""
        for cookie in list(c.inflight):
            try:
                done = c.h.aio_command_completed(cookie)
            except nbd.Error as err:
                if c.h.aio_is_dead() or c.h.aio_is_closed():
                    return False
                raise SystemExit("writers: %s: a command failed on a live connection: %s" % (c.export.name, err))
            if not done:
                continue
            kind, what, _ = c.inflight.pop(cookie)
            e = c.export
            if kind == "flush":
                e.flushed_seq = max(e.flushed_seq, what)
            else:
                self.counts["acked"] += 1
                for b, w in what:
                    w.state, w.ack_seq = ACKED, e.ack_seq
                    e.busy.discard(b)
                e.ack_seq += 1
                if not self.writing:
                    self.writing = True
                    self.report(event="writing", cycle=self.cycle)
        return True

    def run_until_broken(self, handles):
        """Keeps QD commands in flight on every handle until one breaks (or SIGTERM); True when broken."""
        while True:
            if not self.stopping:
                for c in handles:
                    while len(c.inflight) < self.a.depth:
                        self.issue(c)
            rl, wl = [], []
            for c in handles:
                d = c.h.aio_get_direction()
                if d & nbd.AIO_DIRECTION_READ:
                    rl.append(c)
                if d & nbd.AIO_DIRECTION_WRITE:
                    wl.append(c)
            if not any(c.inflight for c in handles):
                return False
            r, w, _ = select.select(rl, wl, [], 1.0)
            broken = False
            for c in set(r) | set(w):
                try:
                    if c in r:
                        c.h.aio_notify_read()
                    if c in w:
                        c.h.aio_notify_write()
                except nbd.Error:
                    broken = True
            for c in handles:
                if not self.retire(c):
                    broken = True
            if broken:
                return True

    def main(self):
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        handles, _ = self.connect_all()
        self.report(event="running", cycle=0)
        while True:
            broken = self.run_until_broken(handles)
            for c in handles:
                c.drop()
            if not broken:
                break
            self.cycle += 1
            handles, tries = self.connect_all()
            self.counts["reconnects"] += 1
            kept = self.verify("reconnect %d" % self.cycle)
            self.report(event="verified", cycle=self.cycle, tries=tries, **kept)
            self.writing = False
            self.report(event="running", cycle=self.cycle)
        # SIGTERM: nothing in flight any more; flush both exports, then everything must be there.
        for e in self.exports:
            h = nbd.NBD()
            h.connect_uri(self.uri(e))
            h.flush()
            e.flushed_seq = e.ack_seq
            h.shutdown()
        self.verify("the end")
        c = self.counts
        print("writers: %d reconnects; writes issued %d, acknowledged %d (%d with FUA, %d WRITE_ZEROES), %d flushes; "
              "blocks verified %d (%d of them torn, each sector a candidate), block writes checked %d, "
              "newest durable write of a block read back %d, lost %d; acknowledged but not kept %d; "
              "in flight at a break: %d landed, %d did not"
              % (c["reconnects"], c["issued"], c["acked"], c["fua"], c["zeroes"], c["flushes"], c["blocks"],
                 c["torn"], c["writes_checked"], c["verified"], c["lost"], c["acked_not_kept"],
                 c["in_flight_landed"], c["in_flight_not_landed"]))
        self.report(event="done", **c)
        return c["lost"] == 0


class Conn:
    def __init__(self, h, export):
        self.h, self.export = h, export
        self.inflight = {}

    def fileno(self):
        return self.h.aio_get_fd()

    def drop(self):
        try:
            if not (self.h.aio_is_dead() or self.h.aio_is_closed()):
                self.h.shutdown()
        except nbd.Error:
            pass
        self.h = None   # the handle is freed with its last reference


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sock", required=True)
    p.add_argument("--status", required=True)
    p.add_argument("--origin", default="vol")
    p.add_argument("--snapshot", default="snap")
    p.add_argument("--size", type=int, default=32 * MIB, help="bytes of each view")
    p.add_argument("--connections", type=int, default=2, help="per export")
    p.add_argument("--depth", type=int, default=8, help="commands in flight per connection")
    p.add_argument("--zeroes", type=float, default=0.0, help="share of the writes sent as WRITE_ZEROES")
    p.add_argument("--reconnect-deadline", type=int, default=180)
    p.add_argument("--seed", type=int, default=int(time.time()))
    a = p.parse_args()
    print("writers: seed %d" % a.seed)
    sys.exit(0 if Driver(a).main() else 1)


if __name__ == "__main__":
    main()
