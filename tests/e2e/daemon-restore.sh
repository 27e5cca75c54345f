#!/usr/bin/env bash
# State restore: devices created through the CLI come back after a kill -9 and a restart, in
# dependency order (a device stacked on another with dm:NAME, snapshots before origins), with
# the same status and table lines; a device whose backing file vanished is reported and
# skipped while the others come up; every write an NBD client had acknowledged (to the origin
# and to the snapshot, none followed by a flush) reads back after the restart, and the snapshot
# still shows the origin's old data where the origin was overwritten. The snapshot runs in
# --cache directsync, the kernel's rule, which promises exactly that; the default (none) keeps
# only what a FLUSH or FUA covered (README, "Durability and cache modes").
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"; STATE="$work/state"
E2E_KILL=9
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
start() { start_daemon "$RUN" --state-dir "$STATE"; }

"$DMSNAP" --version >/dev/null
truncate -s 8M "$work/base.img" "$work/other.img"
truncate -s 4M "$work/cow.img"
base=$(readlink -f "$work/base.img"); cow=$(readlink -f "$work/cow.img"); other=$(readlink -f "$work/other.img")
start
d create lower --table "0 16384 linear $base 0"
d create origin --table "0 16384 snapshot-origin dm:lower"
d suspend origin
d create snap --cache directsync --table "0 16384 snapshot dm:lower $cow P 8"
d resume origin
d create doomed --table "0 100 linear $other 0"
# Acknowledged writes, no flush: 64 random 4 KiB blocks into the origin, 64 into the snapshot.
head -c 1M /dev/urandom | dd of="$base" conv=notrunc status=none   # old data for the snapshot to keep
nbd_io() { /usr/bin/python3 -c "$1" "$work" "$RUN/nbd.sock"; }   # libnbd is Debian's python3 module
nbd_io '
import random, sys, nbd, pickle
work, sock = sys.argv[1], sys.argv[2]
def conn(name):
    h = nbd.NBD(); h.connect_uri("nbd+unix:///%s?socket=%s" % (name, sock)); return h
rnd = random.Random(7)
snap, origin = conn("snap"), conn("origin")
old = {}
writes = {"origin": {}, "snap": {}}
for i in range(64):
    off = rnd.randrange(0, 1024) * 4096
    if off not in old:
        old[off] = snap.pread(4096, off)
    data = rnd.randbytes(4096)
    origin.pwrite(data, off); writes["origin"][off] = data
for i in range(64):
    off = rnd.randrange(1024, 2048) * 4096
    data = rnd.randbytes(4096)
    snap.pwrite(data, off); writes["snap"][off] = data
pickle.dump((old, writes), open(work + "/acked.pickle", "wb"))
'
before_status=$(d status); before_table=$(d table)

kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
rm "$work/other.img"
start
expect_eq "status after kill -9 and restart" "$(echo "$before_status" | grep -v '^doomed')" "$(d status)"
expect_eq "table after kill -9 and restart" "$(echo "$before_table" | grep -v '^doomed')" "$(d table)"
expect_contains "the vanished device is reported" "doomed: not restored" "$(cat "$work/daemon.log")"
expect_contains "restored count" "restored 3 device(s)" "$(cat "$work/daemon.log")"
nbd_io '
import sys, nbd, pickle
work, sock = sys.argv[1], sys.argv[2]
def conn(name):
    h = nbd.NBD(); h.connect_uri("nbd+unix:///%s?socket=%s" % (name, sock)); return h
old, writes = pickle.load(open(work + "/acked.pickle", "rb"))
snap, origin = conn("snap"), conn("origin")
for off, data in writes["origin"].items():
    assert origin.pread(4096, off) == data, "origin write at %d lost" % off
for off, data in old.items():
    if off not in writes["snap"]:
        assert snap.pread(4096, off) == data, "snapshot lost the old data at %d" % off
for off, data in writes["snap"].items():
    assert snap.pread(4096, off) == data, "snapshot write at %d lost" % off
print("  %d origin and %d snapshot writes acknowledged before kill -9 read back; the snapshot kept %d old blocks"
      % (len(writes["origin"]), len(writes["snap"]), len(old)))
'
echo "daemon restore: ok"
