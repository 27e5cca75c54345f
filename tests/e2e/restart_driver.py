#!/usr/bin/python3
"""Writers for tests/e2e/restart.sh (issue 16, point 5): libnbd connections to an origin and its
snapshot doing writes, FUA writes and FLUSHes (aio, several in flight on each), across daemon
stops and kills that restart.sh makes at random moments.

The model: a block is written by one request at a time, so its writes are ordered. A write is
durable once acknowledged with FUA, or acknowledged before a FLUSH on the same export was sent and
that FLUSH completed (CAN_MULTI_CONN: a flush covers the writes completed on every connection).
When the connections break the driver reconnects (retrying until the daemon is back) and reads
every block of both views: each must hold its last durable content or a later write's (a write
in flight may or may not have landed; an acknowledged but unflushed one may be lost); the snapshot
never an origin write. What was read becomes the block's durable content, and the load goes on.

Progress goes to STATUS as JSON lines ({"event": "running", "cycle": N} once the load runs after
the Nth reconnect); SIGTERM ends the load, and the driver verifies once more and prints the counts.
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
from nbdraw import BLOCK, base_block, describe_block, stamp  # noqa: E402

MIB = 1 << 20
ISSUED, ACKED = 0, 1


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
        return base_block(key[1], b) if key[0] == "base" else stamp(key[0], b, key[1])

    def durable(self, e):
        return e.durable or e.state == ACKED and (e.fua or e.ack_seq < self.flushed_seq)


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
        self.counts = dict(issued=0, acked=0, fua=0, flushes=0, verified=0, lost=0, acked_not_kept=0,
                           in_flight_landed=0, in_flight_not_landed=0, reconnects=0)
        self.per_cycle = []
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
                    raise SystemExit("restart driver: no connection within %d s: %s" % (self.a.reconnect_deadline, err))
                time.sleep(0.1)

    # ---- verification ----------------------------------------------------------------------------
    def verify(self, why):
        """Reads both views; checks every block against its candidates; the result becomes durable."""
        problems = []
        kept = {"lost": 0, "acked_not_kept": 0, "verified": 0, "landed": 0, "not_landed": 0}
        for e in self.exports:
            h = nbd.NBD()
            h.connect_uri(self.uri(e))
            blocks = list(e.verify_blocks)
            for start in range(0, len(blocks), 256):
                run = blocks[start:start + 256]
                data = h.pread(len(run) * BLOCK, run[0] * BLOCK)
                for i, b in enumerate(run):
                    got = data[i * BLOCK:(i + 1) * BLOCK]
                    hist = e.hist[b]
                    last_durable = max(i for i, w in enumerate(hist) if e.durable(w))
                    candidates = hist[last_durable:]
                    match = next((j for j, w in enumerate(candidates) if e.content(b, w.key) == got), None)
                    if match is None:
                        kept["lost"] += 1
                        what = describe_block(got)
                        if e is self.exports[1] and what.startswith("stamp(dev 1,"):
                            what += ": an origin write in the snapshot"
                        problems.append("%s block %d: holds %s; last durable write %s, %d later candidate(s)"
                                        % (e.name, b, what, candidates[0].key, len(candidates) - 1))
                        continue
                    w = candidates[match]
                    if last_durable > 0:
                        kept["verified"] += 1   # the block's newest durable write (or a later one) is there
                    last_acked = max((j for j, x in enumerate(candidates) if x.state == ACKED), default=None)
                    if last_acked is not None and match < last_acked:
                        kept["acked_not_kept"] += 1
                    for x in candidates[1:]:
                        if x.state == ISSUED:
                            kept["landed" if x is w else "not_landed"] += 1
                    e.hist[b] = [Entry(w.key, durable=True)]
            h.shutdown()
        self.counts["verified"] += kept["verified"]
        self.counts["lost"] += kept["lost"]
        self.counts["acked_not_kept"] += kept["acked_not_kept"]
        self.counts["in_flight_landed"] += kept["landed"]
        self.counts["in_flight_not_landed"] += kept["not_landed"]
        for p in problems[:10]:
            print("restart driver: LOST after %s: %s" % (why, p), file=sys.stderr)
        self.per_cycle.append(dict(cycle=self.cycle, why=why, **kept))
        for e in self.exports:
            e.ack_seq = e.flushed_seq = 0
            e.busy.clear()
        return kept

    # ---- load ------------------------------------------------------------------------------------
    def issue(self, c):
        e = c.export
        x = self.rnd.random()
        if x < 0.1:
            seq = e.ack_seq
            cookie = c.h.aio_flush()
            c.inflight[cookie] = ("flush", seq, None)
            self.counts["flushes"] += 1
            return
        fua = x < 0.25
        for _ in range(8):
            first = self.rnd.choice(e.write_blocks)
            if first not in e.busy:
                break
        else:
            return
        n = 1
        limit = self.rnd.choice((1, 1, 2, 4))
        while n < limit and first + n in e.write_blocks and first + n not in e.busy:
            n += 1
        e.version += 1
        entries = []
        for b in range(first, first + n):
            w = Entry((e.id, e.version))
            w.fua = fua
            e.hist[b].append(w)
            e.busy.add(b)
            entries.append((b, w))
        # bytes, not nbd.Buffer: libnbd 1.14's python aio_pwrite never frees a Buffer (4 KiB leaked per write).
        buf = b"".join(stamp(e.id, b, e.version) for b in range(first, first + n))
        cookie = c.h.aio_pwrite(buf, first * BLOCK, flags=nbd.CMD_FLAG_FUA if fua else 0)
        c.inflight[cookie] = ("write", entries, buf)
        self.counts["issued"] += 1
        self.counts["fua"] += fua

    def retire(self, c):
        """Collects the commands of c that completed; False when the connection broke."""
        for cookie in list(c.inflight):
            try:
                done = c.h.aio_command_completed(cookie)
            except nbd.Error as err:
                if c.h.aio_is_dead() or c.h.aio_is_closed():
                    return False
                raise SystemExit("restart driver: %s: a command failed on a live connection: %s" % (c.export.name, err))
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
            self.report(event="running", cycle=self.cycle)
        # SIGTERM: nothing in flight any more; flush both exports, then everything must be there.
        for e in self.exports:
            h = nbd.NBD()
            h.connect_uri(self.uri(e))
            h.flush()
            e.flushed_seq = e.ack_seq
            h.shutdown()
        kept = self.verify("the end")
        c = self.counts
        print("restart driver: %d reconnects; writes issued %d, acknowledged %d (%d with FUA), %d flushes; "
              "verified %d (newest durable write of a block read back), lost %d; acknowledged but not kept %d; "
              "in flight at a break: %d landed, %d did not"
              % (c["reconnects"], c["issued"], c["acked"], c["fua"], c["flushes"], c["verified"], c["lost"],
                 c["acked_not_kept"], c["in_flight_landed"], c["in_flight_not_landed"]))
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
    p.add_argument("--size", type=int, default=32 * MIB)
    p.add_argument("--connections", type=int, default=2, help="per export")
    p.add_argument("--depth", type=int, default=8, help="commands in flight per connection")
    p.add_argument("--reconnect-deadline", type=int, default=180)
    p.add_argument("--seed", type=int, default=int(time.time()))
    a = p.parse_args()
    print("restart driver: seed %d" % a.seed)
    sys.exit(0 if Driver(a).main() else 1)


if __name__ == "__main__":
    main()
