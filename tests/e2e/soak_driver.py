#!/usr/bin/python3
"""Load and soak driver for tests/e2e/soak.sh (issue 16, point 4).

Against one running daemon it sets up 20 devices (5 origins over mostly sparse 64 MiB images with 2
or 3 snapshots each, 3 linear devices), then keeps CONNECTIONS NBD connections open at once for
DURATION seconds:
  * normal clients do reads, writes, FUA writes, WRITE_ZEROES and FLUSHes at queue depth 1 or 4
    and verify every read against a model: a writer owns one 1 MiB slot of its device, a reader
    reads slots nobody writes on that device (a snapshot's reads there must keep showing the
    base while the origin is overwritten);
  * slow readers send large reads (32 MiB down to 4 KiB, 64 MiB in all) and never read a reply
    (one small read more every 2 s) until the server closes them (its watchdog), then come again;
  * hang-up clients connect in a loop and hang up half-way: in the handshake, after half a
    request header, after half a write payload (into a slot readers verify: it must never land),
    right after a large read or a whole write;
  * churn: snapshot create / refresh / refresh of a loaded snapshot / remove through the CLI;
  * one merge: the clients of mvol-s0 leave, `snapshot merge mvol-s0` starts, and clients of
    mvol verify that it shows mvol-s0's content at once while the merge runs.
Every second the daemon's VmRSS, Threads and open descriptors go into a CSV. At the end: a summary
and the checks (no error and no stuck request for normal clients, no growth after warm-up, back to
the idle level after the clients left); exit status 1 when one fails.
"""
import argparse
import asyncio
import json
import os
import random
import resource
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdraw import (BLOCK, CMD_FLUSH, CMD_READ, CMD_WRITE, CMD_WRITE_ZEROES, ERRNO_NAMES, FLAG_FUA, ZERO,  # noqa: E402
                    Connection, check_greeting, describe_block, expected, first_difference, raw_connect, raw_handshake,
                    request_header, stamp, sock_recv_exactly, write_base_image)

MIB = 1 << 20
SIZE = 64 * MIB
SLOT_BLOCKS = MIB // BLOCK
SCRATCH = range(60, 64)      # whole writes of hang-up clients go here: nobody verifies these slots
HALF_WRITES = range(50, 60)  # half writes of hang-up clients go here: readers verify these slots


class Device:
    """A device, the slots its writers own and its readers read, and the model of what it holds."""

    def __init__(self, name, kind, dev_id, base_id):
        self.name, self.kind, self.id, self.base_id = name, kind, dev_id, base_id
        self.model = {}
        self.version = 0
        if kind == "origin":
            self.writable, self.readable = list(range(0, 32)), list(range(32, 60))
        elif kind == "snapshot":
            self.writable, self.readable = list(range(32, 48)), list(range(0, 32)) + list(range(48, 60))
        else:
            self.writable, self.readable = list(range(0, 48)), list(range(48, 60))
        self.stop = asyncio.Event()
        self.clients = []

    def next_version(self):
        self.version += 1
        return self.version


class Soak:
    def __init__(self, args):
        self.a = args
        self.rnd = random.Random(args.seed)
        self.devices = {}
        self.errors = []
        self.stop = asyncio.Event()
        self.go = asyncio.Event()
        self.t0 = None
        self.phase = "setup"
        self.open_conns = set()       # normal clients' connections, for the stuck-request monitor
        self.clients_open = 0         # every client connection open now (normal, slow, hang-up)
        self.peak_open = 0
        self.counts = dict(normal_conns=0, slow_conns=0, slow_closed_by_server=0, hangup_conns=0, requests=0,
                           verified_reads=0, verified_bytes=0, writes=0, flushes=0, slow_requests=0,
                           churn_cycles=0, cli_calls=0)
        self.hangup_modes = {}
        self.max_latency = 0.0
        self.histogram = {}
        self.max_latency_at = None
        self.stuck = []
        self.samples = []
        self.merge = {}
        self.cli_seconds = []

    # ---- bookkeeping -----------------------------------------------------------------------------
    def now(self):
        return time.monotonic() - self.t0 if self.t0 else 0.0

    def error(self, msg):
        if len(self.errors) < 10:
            print("soak: ERROR at %.1fs: %s" % (self.now(), msg), file=sys.stderr, flush=True)
        self.errors.append(msg)

    def opened(self):
        self.clients_open += 1
        self.peak_open = max(self.peak_open, self.clients_open)

    def latency(self, seconds, what):
        ms = int(seconds * 1000)
        bucket = ms.bit_length()   # 0: <1 ms, k: [2^(k-1), 2^k) ms
        self.histogram[bucket] = self.histogram.get(bucket, 0) + 1
        if seconds > self.max_latency:
            self.max_latency, self.max_latency_at = seconds, "%s, ended at %.1fs" % (what, self.now())

    async def cli(self, *words, check=True):
        cmd = [self.a.dmsnap, *words, "--run-dir", self.a.run_dir]
        started = time.monotonic()
        p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(p.communicate(), self.a.cli_timeout)
        except asyncio.TimeoutError:
            p.kill()
            await p.wait()
            self.error("dmsnap %s: no answer within %d s" % (" ".join(words), self.a.cli_timeout))
            return None
        self.counts["cli_calls"] += 1
        self.cli_seconds.append(time.monotonic() - started)
        text = out.decode(errors="replace").strip()
        if p.returncode != 0 and check:
            self.error("dmsnap %s: exit %d: %s" % (" ".join(words), p.returncode, text))
            return None
        return text

    # ---- setup -----------------------------------------------------------------------------------
    async def setup(self):
        work = self.a.work
        dev_id = 0

        def add(name, kind, base_id=None):
            nonlocal dev_id
            dev_id += 1
            d = Device(name, kind, dev_id, base_id if base_id is not None else dev_id)
            self.devices[name] = d
            return d

        groups = []
        for o, snaps in (("vol0", 3), ("vol1", 3), ("vol2", 2), ("vol3", 2), ("mvol", 2)):
            origin = add(o, "origin")
            write_base_image("%s/%s.img" % (work, o), origin.id, SIZE)
            steps = [("origin", "create", o, "%s/%s.img" % (work, o))]
            for i in range(snaps):
                s = add("%s-s%d" % (o, i), "snapshot", origin.id)
                s.origin = origin
                steps.append(("snapshot", "create", o, s.name, "--cow", "%s/%s.cow" % (work, s.name),
                              "--cow-size", "80M"))
            groups.append(steps)
        for i in range(3):
            lin = add("lin%d" % i, "linear")
            write_base_image("%s/%s.img" % (work, lin.name), lin.id, SIZE)
            groups.append([("create", lin.name, "--table", "0 %d linear %s/%s.img 0" % (SIZE // 512, work, lin.name))])
        limit = asyncio.Semaphore(3)

        async def run(steps):
            async with limit:
                for s in steps:
                    if await self.cli(*s) is None:
                        return

        await asyncio.gather(*(run(g) for g in groups))
        if self.errors:
            raise SystemExit("soak: setup failed")

    # ---- normal clients --------------------------------------------------------------------------
    async def op(self, conn, dev, kind, first, count):
        off, length = first * BLOCK, count * BLOCK
        what = "%s %s %d+%d" % (dev.name, kind, off, length)
        if kind == "read":
            err, data, t = await conn.request(CMD_READ, off, length)
        elif kind == "flush":
            err, data, t = await conn.request(CMD_FLUSH, 0, 0)
        elif kind == "zero":
            err, data, t = await conn.request(CMD_WRITE_ZEROES, off, length, flags=FLAG_FUA if count % 2 else 0)
        else:
            v = dev.next_version()
            payload = b"".join(stamp(dev.id, b, v) for b in range(first, first + count))
            err, data, t = await conn.request(CMD_WRITE, off, length, payload, FLAG_FUA if kind == "fua" else 0)
        self.counts["requests"] += 1
        self.latency(t, what)
        if err:
            raise RuntimeError("%s: error %s" % (what, ERRNO_NAMES.get(err, err)))
        if kind == "read":
            want = expected(dev.model, dev.base_id, first, count)
            if data != want:
                raise RuntimeError("%s: wrong data: %s" % (what, first_difference(data, want, first)))
            self.counts["verified_reads"] += 1
            self.counts["verified_bytes"] += length
        elif kind == "flush":
            self.counts["flushes"] += 1
        else:
            self.counts["writes"] += 1
            for b in range(first, first + count):
                dev.model[b] = ZERO if kind == "zero" else (dev.id, v)

    def plan(self, rnd, dev, slot, depth):
        """depth requests on disjoint ranges: a writer's in its slot, a reader's in the readable slots."""
        ops = []
        if slot is not None:
            part = SLOT_BLOCKS // depth
            for i in range(depth):
                lo = slot * SLOT_BLOCKS + i * part
                x = rnd.random()
                if x < 0.08:
                    ops.append(("read", lo, part))     # a large read
                    continue
                n = rnd.choice((1, 1, 2, 4, 8, 16))
                first = lo + rnd.randrange(part - n + 1)
                kind = ("flush" if x < 0.13 else "zero" if x < 0.20 else "fua" if x < 0.28 else
                        "write" if x < 0.58 else "read")
                ops.append((kind, first, n))
        else:
            for _ in range(depth):
                s = rnd.choice(dev.readable)
                x = rnd.random()
                n = rnd.choice((64, 128, 256)) if x < 0.12 else rnd.choice((1, 1, 2, 4, 16))
                first = s * SLOT_BLOCKS + rnd.randrange(SLOT_BLOCKS - n + 1)
                ops.append(("flush" if x > 0.96 else "read", first, n))
        return ops

    async def normal_client(self, dev, slot, depth, seed, ready):
        rnd = random.Random(seed)
        role = "writer of slot %d" % slot if slot is not None else "reader"
        conn = Connection(self.a.sock, dev.name)
        try:
            await conn.open()
        except Exception as e:
            self.error("%s %s: connect: %r" % (dev.name, role, e))
            ready()
            return
        self.counts["normal_conns"] += 1
        self.opened()
        self.open_conns.add(conn)
        ready()
        try:
            await self.go.wait()
            while not self.stop.is_set() and not dev.stop.is_set():
                await asyncio.gather(*(self.op(conn, dev, *o) for o in self.plan(rnd, dev, slot, depth)))
                await asyncio.sleep(rnd.uniform(0, 2 * self.a.think_ms / 1000))
            if slot is not None:
                await self.op(conn, dev, "read", slot * SLOT_BLOCKS, SLOT_BLOCKS)  # the whole slot, once more
            await conn.close()
        except Exception as e:
            self.error("%s %s: %s" % (dev.name, role, e))
        finally:
            self.open_conns.discard(conn)
            self.clients_open -= 1

    def start_clients(self, dev, count, seed_base, ready):
        writers = min(len(dev.writable), count // 2)
        for i in range(count):
            slot = dev.writable[i] if i < writers else None
            dev.clients.append(asyncio.get_running_loop().create_task(
                self.normal_client(dev, slot, 4 if i % 4 == 3 else 1, seed_base + i, ready)))

    # ---- slow readers ----------------------------------------------------------------------------
    SLOW_READS = [32 * MIB, 16 * MIB, 8 * MIB, 4 * MIB, MIB, MIB, MIB] + [64 << 10] * 16 + [BLOCK] * 16

    async def slow_reader(self, targets, seed, ready):
        rnd = random.Random(seed)
        loop = asyncio.get_running_loop()
        first = True
        while not self.stop.is_set():
            dev = rnd.choice(targets)
            sock = None
            counted = False
            try:
                sock = await raw_connect(self.a.sock)
                await raw_handshake(sock, dev.name)
                self.counts["slow_conns"] += 1
                self.opened()
                counted = True
                if first:
                    first = False
                    ready()
                    await self.go.wait()
                # Large reads of slots 0..31 (the base on every snapshot): 64 MiB of replies nobody takes.
                for n in self.SLOW_READS:
                    await loop.sock_sendall(sock, request_header(CMD_READ, rnd.randrange(0, 32 * MIB - n + 1, BLOCK), n))
                    self.counts["slow_requests"] += 1
                # Held until the server's watchdog closes it (a reply overdue: 30 s by default); at most 120 s.
                hold_until = time.monotonic() + 120
                while not self.stop.is_set() and time.monotonic() < hold_until:
                    try:
                        await asyncio.wait_for(self.stop.wait(), 2)
                    except asyncio.TimeoutError:
                        pass
                    # One more small read now and then: a socket the server closed says so (EPIPE).
                    try:
                        await asyncio.wait_for(loop.sock_sendall(sock, request_header(CMD_READ, 0, BLOCK)), 10)
                        self.counts["slow_requests"] += 1
                    except (BrokenPipeError, ConnectionResetError):
                        self.counts["slow_closed_by_server"] += 1
                        break
            except Exception as e:
                if first:
                    self.error("slow reader on %s: connect: %r" % (dev.name, e))
                    first = False
                    ready()
                    return
                # A later connection refused or cut: the server may be busy; not a normal client's error.
            finally:
                if sock is not None:
                    sock.close()
                if counted:
                    self.clients_open -= 1
            await asyncio.sleep(rnd.uniform(0.2, 1))

    # ---- clients that hang up half-way -----------------------------------------------------------
    async def hangup_client(self, targets, seed):
        rnd = random.Random(seed)
        loop = asyncio.get_running_loop()
        await self.go.wait()
        while not self.stop.is_set():
            dev = rnd.choice(targets)
            mode = rnd.choice(("greeting", "half option", "half header", "half write", "large read", "whole write",
                               "read, half header"))
            sock = None
            try:
                sock = await raw_connect(self.a.sock)
                self.opened()
                self.counts["hangup_conns"] += 1
                self.hangup_modes[mode] = self.hangup_modes.get(mode, 0) + 1
                if mode == "greeting":
                    check_greeting(await sock_recv_exactly(loop, sock, 18))
                elif mode == "half option":
                    check_greeting(await sock_recv_exactly(loop, sock, 18))
                    await loop.sock_sendall(sock, b"\0\0\0\3" + b"IHAVEOPT\0\0\0\7\0\0")
                else:
                    await raw_handshake(sock, dev.name)
                    s = rnd.choice(HALF_WRITES) * MIB
                    if mode == "half header":
                        await loop.sock_sendall(sock, request_header(CMD_READ, s, BLOCK)[:14])
                    elif mode == "half write":
                        await loop.sock_sendall(sock, request_header(CMD_WRITE, s, 64 << 10) + b"\xee" * (32 << 10))
                    elif mode == "large read":
                        await loop.sock_sendall(sock, request_header(CMD_READ, s, MIB))
                    elif mode == "whole write":
                        await loop.sock_sendall(sock, request_header(CMD_WRITE, rnd.choice(SCRATCH) * MIB, 64 << 10)
                                                + b"\xdd" * (64 << 10))
                    else:
                        await loop.sock_sendall(sock, request_header(CMD_READ, s, BLOCK, cookie=1))
                        head = await sock_recv_exactly(loop, sock, 16)
                        data = await sock_recv_exactly(loop, sock, BLOCK)
                        want = expected(dev.model, dev.base_id, s // BLOCK, 1)
                        if head[4:8] != b"\0\0\0\0" or data != want:
                            self.error("%s: read before hanging up: %s" % (dev.name, first_difference(data, want, s // BLOCK)))
                        await loop.sock_sendall(sock, request_header(CMD_READ, s, BLOCK)[:20])
            except (ConnectionError, OSError) as e:
                self.error("hang-up client (%s) on %s: %r" % (mode, dev.name, e))
            finally:
                if sock is not None:
                    sock.close()
                    self.clients_open -= 1
            await asyncio.sleep(rnd.uniform(0.02, 0.2))

    # ---- snapshot churn and the merge ------------------------------------------------------------
    async def churn(self):
        await self.go.wait()
        origins = [self.devices[n] for n in ("vol0", "vol1", "vol2", "vol3")]
        loaded = [d for d in self.devices.values() if d.kind == "snapshot" and d.name != "mvol-s0"]
        i = 0
        while not self.stop.is_set():
            o = origins[i % len(origins)]
            name = "%s-churn%d" % (o.name, i)
            cow = "%s/%s.cow" % (self.a.work, name)
            if await self.cli("snapshot", "create", o.name, name, "--cow", cow, "--cow-size", "40M") is None:
                return
            try:
                conn = await Connection(self.a.sock, name).open()
                self.opened()
                try:
                    s = HALF_WRITES[i % len(HALF_WRITES)] * SLOT_BLOCKS
                    await self.op(conn, o, "read", s, SLOT_BLOCKS)  # nobody writes there: the origin's base
                    await conn.close()
                finally:
                    self.clients_open -= 1
            except Exception as e:
                self.error("churn snapshot %s: %s" % (name, e))
            for words in (("snapshot", "refresh", name), ("snapshot", "refresh", loaded[i % len(loaded)].name),
                          ("snapshot", "remove", name)):
                if await self.cli(*words) is None:
                    return
            os.remove(cow)
            i += 1
            self.counts["churn_cycles"] = i

    async def merge_flow(self, at):
        ms0, mvol = self.devices["mvol-s0"], self.devices["mvol"]
        await self.go.wait()
        await asyncio.sleep(max(0, at - self.now()))
        if self.stop.is_set():
            return
        ms0.stop.set()
        await asyncio.gather(*ms0.clients)   # they saw the server close: nothing holds mvol-s0 any more
        self.merge["clients"] = len(ms0.clients)
        self.merge["started_at"] = self.now()
        out = await self.cli("snapshot", "merge", "mvol-s0", "--background")
        if out is None:
            return
        if "merging in the background" not in out:
            self.error("snapshot merge mvol-s0 did not start: %s" % out)
            return
        # mvol shows mvol-s0 at once: its model (slots 32..47 as mvol-s0's writers left them) moves over.
        mvol.model = dict(ms0.model)
        mvol.version = ms0.version
        self.start_clients(mvol, len(ms0.clients), 1_000_000, lambda: None)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            out = await self.cli("snapshot", "merge", "--status", "mvol", "--json")
            if out is None:
                return
            row = json.loads(out)["merges"][0]
            if row["state"] == "finished":
                self.merge.update(seconds=self.now() - self.merge["started_at"], bytes=row["totalBytes"],
                                  table=row["table"])
                return
            # As `snapshot merge` follows it: "complete" (the table is being replaced) and a short
            # "stopped" come before "finished"; only a failed or invalid merge is an error.
            if row["state"] in ("failed", "invalid"):
                self.error("merge of mvol-s0: %s" % out)
                return
            await asyncio.sleep(0.5)
        self.error("the merge of mvol-s0 did not finish within 300 s")

    def percentile(self, q):
        """The upper bound (ms) of the histogram bucket that holds the q-quantile."""
        total = sum(self.histogram.values())
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= q * total:
                return 1 << bucket
        return 0

    # ---- sampling --------------------------------------------------------------------------------
    def sample(self):
        pid = self.a.pid
        rss = threads = None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        s = dict(t=round(self.now(), 1), phase=self.phase, rss_kib=rss, threads=threads, fds=fds,
                 clients_open=self.clients_open, requests=self.counts["requests"], errors=len(self.errors))
        self.samples.append(s)
        self.csv.write(",".join(str(s[k]) for k in s) + "\n")
        self.csv.flush()
        return s

    async def sampler(self):
        while True:
            self.sample()
            now = time.monotonic()
            for conn in list(self.open_conns):
                age = conn.oldest_pending(now)
                if age > self.max_latency:
                    self.max_latency, self.max_latency_at = age, "%s, still waiting at %.1fs" % (conn.export, self.now())
                if age > self.a.stuck_seconds and conn not in self.stuck:
                    self.stuck.append(conn)
                    self.error("a request of a normal client on %s has waited %.1f s" % (conn.export, age))
            await asyncio.sleep(1)

    # ---- the run ---------------------------------------------------------------------------------
    async def run(self):
        a = self.a
        self.csv = open(a.csv, "w")
        self.csv.write("t,phase,rss_kib,threads,fds,clients_open,requests,errors\n")
        started = time.monotonic()
        await self.setup()
        print("soak: 20 devices set up in %.1f s" % (time.monotonic() - started), flush=True)
        self.phase = "idle"
        idle = self.sample()
        sampler = asyncio.get_running_loop().create_task(self.sampler())

        self.phase = "connect"
        waiting = [0]
        all_ready = asyncio.Event()

        def ready():
            waiting[0] -= 1
            if waiting[0] == 0:
                all_ready.set()

        slow_targets = [d for d in self.devices.values() if d.kind == "snapshot" and d.name != "mvol-s0"]
        hangup_targets = [d for d in self.devices.values() if d.name not in ("mvol", "mvol-s0")]
        served = [d for d in self.devices.values() if d.name != "mvol"]
        normal = a.connections - a.slow
        waiting[0] = a.connections
        connect_started = time.monotonic()
        for k, d in enumerate(served):
            self.start_clients(d, normal // len(served) + (1 if k < normal % len(served) else 0), 1000 * (k + 1), ready)
        slow = [asyncio.get_running_loop().create_task(self.slow_reader(slow_targets, 77_000 + i, ready))
                for i in range(a.slow)]
        await asyncio.wait_for(all_ready.wait(), 300)
        connect_seconds = time.monotonic() - connect_started
        connected = self.clients_open
        print("soak: %d connections open at once (%d normal, %d slow readers) after %.1f s"
              % (connected, self.counts["normal_conns"], self.counts["slow_conns"], connect_seconds), flush=True)
        if connected < a.connections:
            self.error("only %d of %d connections were accepted" % (connected, a.connections))

        self.phase = "load"
        self.t0 = time.monotonic()
        self.go.set()
        # Warm-up: every kind of client has run and the slow readers hold their buffers (with a heap not
        # pre-touched, RSS crept up for another 30-50 s as G1 first touched its committed heap).
        warmup = min(max(20.0, 0.25 * a.duration), 600.0)
        merge_task = asyncio.get_running_loop().create_task(self.merge_flow(max(warmup, 0.3 * a.duration)))
        churn = asyncio.get_running_loop().create_task(self.churn())
        hangups = [asyncio.get_running_loop().create_task(self.hangup_client(hangup_targets, 99_000 + i))
                   for i in range(a.hangups)]
        try:
            await asyncio.wait_for(self.stop.wait(), a.duration)
        except asyncio.TimeoutError:
            pass
        self.phase = "drain"
        self.stop.set()
        end_of_load = self.now()
        everything = [t for d in self.devices.values() for t in d.clients] + slow + hangups + [churn, merge_task]
        done, pending = await asyncio.wait(everything, timeout=180)
        if pending:
            self.error("%d client tasks did not end within 180 s of the stop" % len(pending))
        for t in done:
            if t.exception() is not None:
                self.error("a client task failed: %r" % (t.exception(),))
        sampler.cancel()
        if self.merge.get("seconds") is None and not any("merge" in e for e in self.errors):
            self.error("the merge of mvol-s0 did not finish during the run")

        # After every client has gone the daemon's threads and descriptors come back (deadline 60 s).
        self.phase = "after"
        fd_bound = idle["fds"] + a.idle_fd_slack
        thread_bound = idle["threads"] + a.io_threads + a.idle_thread_slack
        deadline = time.monotonic() + 60
        while True:
            last = self.sample()
            if last["fds"] <= fd_bound and last["threads"] <= thread_bound or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        self.csv.close()

        # ---- figures and checks -----------------------------------------------------------------
        load = [s for s in self.samples if s["phase"] in ("load", "drain")]
        warm = [s for s in load if s["t"] <= warmup]
        second = [s for s in load if s["t"] >= end_of_load / 2]
        c = self.counts

        def mx(rows, k):
            return max(r[k] for r in rows)

        print("soak: %.0f s of load (warm-up %.0f s): %d client connections in all (%d normal, %d slow-reader, %d "
              "hang-up; peak %d open at once)" % (end_of_load, warmup, c["normal_conns"] + c["slow_conns"] +
                                                  c["hangup_conns"], c["normal_conns"], c["slow_conns"],
                                                  c["hangup_conns"], self.peak_open))
        print("  normal clients: %d requests, %d verified reads (%.0f MiB), %d writes, %d flushes; errors %d; max latency "
              "%.2f s (%s)" % (c["requests"], c["verified_reads"], c["verified_bytes"] / MIB, c["writes"], c["flushes"],
                               len(self.errors), self.max_latency, self.max_latency_at))
        print("  latency of normal clients: p50 < %d ms, p99 < %d ms, p99.9 < %d ms"
              % tuple(self.percentile(q) for q in (0.5, 0.99, 0.999)))
        print("  slow readers: %d requests sent, %d connections closed by the server; hang-ups: %s"
              % (c["slow_requests"], c["slow_closed_by_server"],
                 ", ".join("%s %d" % kv for kv in sorted(self.hangup_modes.items()))))
        print("  churn: %d cycles (create, refresh, refresh of a loaded snapshot, remove); %d CLI calls, slowest %.1f s"
              % (c["churn_cycles"], c["cli_calls"], max(self.cli_seconds, default=0)))
        if self.merge.get("seconds") is not None:
            print("  merge of mvol-s0 (%d clients left it first): started at %.1f s, finished after %.1f s, %d bytes; "
                  "mvol: %s" % (self.merge["clients"], self.merge["started_at"], self.merge["seconds"],
                                self.merge["bytes"], self.merge["table"]))
        w_end = warm[-1] if warm else load[0]
        print("  daemon          %10s %8s %6s" % ("RSS MiB", "threads", "fds"))
        for label, row in (("idle", idle), ("warm-up end", w_end), ("warm-up max", None), ("2nd half max", None),
                           ("end of load", load[-1]), ("max", None), ("after", last)):
            if row is None:
                rows = warm if label == "warm-up max" else second if label == "2nd half max" else self.samples
                row = dict(rss_kib=mx(rows, "rss_kib"), threads=mx(rows, "threads"), fds=mx(rows, "fds"))
            print("  %-15s %10.0f %8d %6d" % (label, row["rss_kib"] / 1024, row["threads"], row["fds"]))
        print("  samples: %s" % a.csv, flush=True)

        if self.max_latency > a.stuck_seconds:
            self.error("a normal client's request waited %.1f s (bound %d s): %s" % (self.max_latency, a.stuck_seconds,
                                                                                   self.max_latency_at))
        churning = a.slow + a.hangups
        if warm and second:
            for k, slack in (("fds", churning + 32), ("threads", 2 * churning + 32), ("rss_kib", a.rss_slack_mib * 1024)):
                if mx(second, k) > mx(warm, k) + slack:
                    self.error("%s grew after warm-up: second half max %d, warm-up max %d (+%d allowed)"
                               % (k, mx(second, k), mx(warm, k), slack))
        if last["fds"] > fd_bound:
            self.error("descriptors after the clients left: %d, idle %d (+%d allowed)" % (last["fds"], idle["fds"],
                                                                                       a.idle_fd_slack))
        if last["threads"] > thread_bound:
            self.error("threads after the clients left: %d, idle %d (+%d I/O threads +%d allowed)"
                       % (last["threads"], idle["threads"], a.io_threads, a.idle_thread_slack))
        if c["churn_cycles"] < 1:
            self.error("no churn cycle completed")
        if len(self.errors) > 10:
            print("soak: %d errors in all; the first 10 are above, the last: %s" % (len(self.errors), self.errors[-1]),
                  file=sys.stderr)
        return not self.errors


def connection_limit(args):
    """LIMIT+EXTRA connections at once: LIMIT get the greeting, the rest are closed at once."""
    socks = []
    served = refused = 0
    slowest = 0.0
    try:
        for _ in range(args.limit + args.extra):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(s)
            s.connect(args.sock)   # blocking: waits while the backlog is full
            s.settimeout(30)
        for s in socks:
            started = time.monotonic()
            head = b""
            try:
                while len(head) < 18:
                    b = s.recv(18 - len(head))
                    if not b:
                        break
                    head += b
            except ConnectionResetError:
                pass
            slowest = max(slowest, time.monotonic() - started)
            if len(head) == 18:
                check_greeting(head)
                served += 1
            elif not head:
                refused += 1
    finally:
        for s in socks:
            s.close()
    print("limit: %d connections at once: %d served (greeting), %d closed at once; slowest answer %.2f s"
          % (len(socks), served, refused, slowest))
    if served != args.limit or refused != args.extra:
        print("limit: FAIL: expected %d served and %d refused" % (args.limit, args.extra), file=sys.stderr)
        return False
    # Healthy afterwards: once the server has let go of those connections (it counts them down as their
    # threads end: retry until then), a new one reads a base stamp of lin0 (slot 50: nobody writes it).
    import nbd
    deadline = time.monotonic() + 60
    tries = 0
    while True:
        tries += 1
        try:
            h = nbd.NBD()
            h.connect_uri("nbd+unix:///lin0?socket=" + args.sock)
            break
        except nbd.Error as e:
            if time.monotonic() > deadline:
                print("limit: FAIL: no new connection within 60 s: %s" % e, file=sys.stderr)
                return False
            time.sleep(0.1)
    block = 50 * MIB // BLOCK
    data = h.pread(BLOCK, block * BLOCK)
    h.shutdown()
    dev_id, b, version = struct.unpack("<IIQ", data[:16])
    if (b, version) != (block, 0) or data != stamp(dev_id, block, 0):
        print("limit: FAIL: lin0 block %d after the limit check: %s" % (block, describe_block(data)), file=sys.stderr)
        return False
    print("limit: then a new connection (after %d tries) read lin0's base stamp" % tries)
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sock", required=True)
    p.add_argument("--run-dir")
    p.add_argument("--dmsnap")
    p.add_argument("--work")
    p.add_argument("--pid", type=int)
    p.add_argument("--csv")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--slow", type=int, default=10)
    p.add_argument("--hangups", type=int, default=20)
    p.add_argument("--think-ms", type=float, default=100, help="mean pause of a normal client between requests")
    p.add_argument("--stuck-seconds", type=int, default=60)
    p.add_argument("--rss-slack-mib", type=int, default=64)
    p.add_argument("--io-threads", type=int, default=64, help="the daemon's NBD I/O pool (made on demand, kept)")
    p.add_argument("--idle-fd-slack", type=int, default=8)
    p.add_argument("--idle-thread-slack", type=int, default=16)
    p.add_argument("--cli-timeout", type=int, default=120)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit-check", action="store_true", help="only: LIMIT+EXTRA connections at once")
    p.add_argument("--limit", type=int, default=1024)
    p.add_argument("--extra", type=int, default=76)
    args = p.parse_args()
    want = args.limit + args.extra + 64 if args.limit_check else args.connections * 2 + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if args.limit_check:
        sys.exit(0 if connection_limit(args) else 1)
    ok = asyncio.run(Soak(args).run())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
