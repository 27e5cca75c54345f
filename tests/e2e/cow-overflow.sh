#!/usr/bin/env bash
# COW overflow under real clients (spec 7), as the kernel does it:
#   (a) fio writes 32 MiB at random into the origin (queue depth 16, crc32c verified) while three
#       snapshots hold it: a P and a PO snapshot on 1 MiB COWs fill up and are invalidated (an
#       origin write that needs a copy into a full COW invalidates even PO), each logged once; fio
#       sees no error; the third snapshot (a COW big enough) keeps every old byte of the origin;
#       the invalid snapshots refuse reads with EIO and are Invalid after a restart too.
#   (b) a PO snapshot written through its own export until its COW is full: the write that does not
#       fit errors, status Overflow, every chunk written before reads back, reads of untouched
#       chunks still read the origin; the origin is unaffected; then an origin write that would
#       need a copy into it invalidates it.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
cd "$work"   # fio's verify state files
RUN="$work/run"; STATE="$work/state"
SOCK="$RUN/nbd.sock"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }
for tool in fio nbdcopy; do command -v "$tool" >/dev/null || fail "$tool is not installed (./test.sh installs it as root)"; done
sha_export() { nbdcopy "$(uri "$1")" - | sha256sum | cut -d' ' -f1; }
"$DMSNAP" --version >/dev/null

head -c 64M /dev/urandom >"$work/base.img"
base_sha=$(sha256sum "$work/base.img" | cut -d' ' -f1)
start_daemon "$RUN" --state-dir "$STATE"
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol p --cow "$work/p.cow" --cow-size 1M --store P >/dev/null
d snapshot create vol po --cow "$work/po.cow" --cow-size 1M --store PO >/dev/null
d snapshot create vol big --cow "$work/big.cow" --cow-size 80M >/dev/null

# ---- (a) fio into the origin --------------------------------------------------------------------------
fio --name=origin --ioengine=nbd --uri="$(uri vol)" --rw=randwrite --bs=4k --size=32m --iodepth=16 \
    --verify=crc32c --do_verify=1 --output-format=json --output="$work/fio.json" >"$work/fio.err" 2>&1 \
    || { cat "$work/fio.err" >&2; fail "fio on the origin failed"; }
out=$(cat "$work/fio.json")
errors=$(echo "$out" | jq '[.jobs[] | .error] | add')
writes=$(echo "$out" | jq '[.jobs[] | .write.total_ios] | add')
expect_eq "fio errors on the origin while two snapshots overflow" 0 "$errors"
[ "$writes" -ge 8192 ] || fail "fio wrote only $writes blocks"
expect_eq "status of the P snapshot" "0 131072 snapshot Invalid" "$(d status p)"
expect_eq "status of the PO snapshot (an origin copy into a full COW invalidates PO too)" \
    "0 131072 snapshot Invalid" "$(d status po)"
case "$(d status big)" in "0 131072 snapshot "*/*) ;; *) fail "the big snapshot: $(d status big)" ;; esac
expect_eq "the big snapshot still shows the origin as it was" "$base_sha" "$(sha_export big)"
for s in p po; do
    expect_eq "invalidations of $s logged" 1 "$(grep -c "$s: Invalidating snapshot: Unable to allocate exception" "$work/daemon.log")"
    rc=0
    /usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
try:
    h.pread(4096, 0)
except nbd.Error as e:
    sys.exit(0 if e.errnum == 5 else 2)
sys.exit(1)' "$(uri "$s")" || rc=$?
    expect_eq "a read of the invalid snapshot $s fails with EIO" 0 "$rc"
done
kill -TERM "$daemon_pid"; wait "$daemon_pid" || fail "SIGTERM: exit $?"; daemon_pid=""
start_daemon "$RUN" --state-dir "$STATE"
expect_eq "the P snapshot is still Invalid after a restart" "0 131072 snapshot Invalid" "$(d status p)"
expect_eq "the big snapshot after a restart" "$base_sha" "$(sha_export big)"
echo "  (a) fio: $writes origin writes verified, 0 errors; P and PO on 1 MiB COWs Invalid (logged once each, reads EIO, still Invalid after a restart); the big snapshot kept every old byte"

# ---- (b) a PO snapshot filled through its own export ----------------------------------------------------
d snapshot remove p >/dev/null
d snapshot remove po >/dev/null
d snapshot create vol po2 --cow "$work/po2.cow" --cow-size 1M --store PO >/dev/null
vol_sha=$(sha_export vol)
result=$(/usr/bin/python3 - "$(uri po2)" "$(uri vol)" <<'PY'
import sys, nbd, random
snap = nbd.NBD(); snap.connect_uri(sys.argv[1])
vol = nbd.NBD(); vol.connect_uri(sys.argv[2])
rnd = random.Random(16)
written = {}
refused = 0
for chunk in range(0, 4096):
    data = rnd.randbytes(4096)
    try:
        snap.pwrite(data, chunk * 4096)
        written[chunk] = data
    except nbd.Error as e:
        assert e.errnum == 5, e
        refused += 1
        break
assert refused == 1, "the COW never filled"
for chunk, data in written.items():
    assert snap.pread(4096, chunk * 4096) == data, "chunk %d written before the overflow" % chunk
last = max(written) + 1
assert snap.pread(4096, (last + 10) * 4096) == vol.pread(4096, (last + 10) * 4096), "an untouched chunk reads the origin"
print(len(written))
PY
) || fail "filling the PO snapshot: $result"
expect_eq "status of the filled PO snapshot" "0 131072 snapshot Overflow" "$(d status po2)"
expect_eq "the origin is unaffected" "$vol_sha" "$(sha_export vol)"
expect_eq "overflow logged once" 1 "$(grep -c "po2: Snapshot overflowed: Unable to allocate exception" "$work/daemon.log")"
/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b"\x5a" * 4096, 60 << 20); h.flush()' "$(uri vol)"
expect_eq "an origin write that needs a copy into the full COW invalidates it" "0 131072 snapshot Invalid" "$(d status po2)"
echo "  (b) PO: $result chunks written through the snapshot, the next one EIO; Overflow, all $result read back; an origin write then invalidated it"
figure overflow.fio "fio: $writes random origin writes (qd 16, crc32c verified), 0 errors, while a P and a PO snapshot on 1 MiB COWs overflowed (Invalid, logged once, reads EIO, Invalid after a restart) and a third kept every old byte"
figure overflow.po "a PO snapshot filled through its export: $result chunks kept and read back, the next write EIO, status Overflow; an origin copy into it then invalidated it"
echo "cow overflow: ok"
