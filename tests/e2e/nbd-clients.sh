#!/usr/bin/env bash
# Real NBD clients against the real daemon (issue 7, points 3 and 4): nbdinfo (size, flags, block
# sizes, --list, TCP), nbdcopy both ways with checksums, nbdsh/libnbd exact-offset I/O, qemu-img
# info/convert/compare and qemu-io patterns, fio's nbd engine with crc32c verification, a real
# ext4 on the snapshot through nbdfuse + losetup, and 50 live refreshes while fio writes the
# origin and verifies the snapshot.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
# fio saves its verify state files into the current directory.
cd "$work"
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed (./test.sh installs it as root)"; }
for tool in nbdinfo nbdcopy nbdsh nbdfuse qemu-img qemu-io fio jq; do need "$tool"; done
"$DMSNAP" --version >/dev/null

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
metrics_port=$(free_port)
start_daemon "$RUN" --nbd-listen "127.0.0.1:$port" --metrics "127.0.0.1:$metrics_port"
SOCK="$RUN/nbd.sock"
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }
# ios reads|writes DEVICE: the requests the daemon completed on DEVICE so far (its metrics).
ios() {
    curl -sS --max-time 60 "http://127.0.0.1:$metrics_port/metrics" \
        | awk -v k="dmsnap_device_$1_total{device=\"$2\"}" '$1 == k { printf "%d\n", $2 }'
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# nbdsh runs "python3" from PATH, which may not be Debian's (the one with libnbd's module).
nbdsh() { PATH="/usr/bin:$PATH" command nbdsh "$@"; }

# A 64 MiB base whose every byte is 0x11, except a recognisable first MiB (the origin writes into it:
# snap.raw below keeps its first content).
head -c 64M /dev/zero | tr '\0' '\021' >"$work/base.img"
/usr/bin/python3 - "$work/base.img" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.write(b"".join(b"dmsnap base sector %06d\n" % i + b"\x11" * (512 - 26) for i in range(2048)))
PY
base_sha=$(sha "$work/base.img")
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 80M >/dev/null

# ---- nbdinfo ----------------------------------------------------------------------------------------
info=$(nbdinfo --json "$(uri vol)")
field() { echo "$info" | jq -r ".exports[0].$1"; }
expect_eq "vol export-size" 67108864 "$(field '"export-size"')"
expect_eq "vol can_flush" true "$(field can_flush)"
expect_eq "vol can_fua" true "$(field can_fua)"
expect_eq "vol can_zero" true "$(field can_zero)"
expect_eq "vol can_multi_conn" true "$(field can_multi_conn)"
expect_eq "vol can_trim (snapshot-origin takes no discards)" false "$(field can_trim)"
expect_eq "vol is_read_only" false "$(field is_read_only)"
expect_eq "vol block_size_minimum" 512 "$(field block_size_minimum)"
expect_eq "vol block_size_preferred" 4096 "$(field block_size_preferred)"
expect_eq "vol block_size_maximum" 33554432 "$(field block_size_maximum)"
expect_eq "vol description" "dmsnap snapshot-origin" "$(field description)"
list=$(nbdinfo --list --json "nbd+unix:///?socket=$SOCK" | jq -r '[.exports[]."export-name"] | sort | join(",")')
expect_eq "nbdinfo --list" "snap,vol" "$list"
expect_eq "TCP export size" 67108864 "$(nbdinfo --size "nbd://127.0.0.1:$port/snap")"
set +e
out=$(nbdinfo "$(uri nosuch)" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "nbdinfo of a missing export succeeded"
expect_contains "missing export" "No such file or directory for export: nosuch" "$out"
d create ro --readonly --table "0 131072 linear $work/base.img 0"
expect_contains "dmsetup info of a read-only device" "State:             ACTIVE (READ-ONLY)" "$(d info ro)"
expect_eq "read-only export" true "$(nbdinfo --json "$(uri ro)" | jq -r '.exports[0].is_read_only')"
out=$(qemu-io -f raw -c 'write -P 0xcd 0 4k' "$(uri ro)" 2>&1 || true)
expect_contains "qemu-io refuses to open a read-only export for writing" "Permission denied" "$out"
out=$(/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.is_read_only()
h.set_strict_mode(0)   # send the write anyway: the server must refuse it
try:
    h.pwrite(bytes(4096), 0); print("written")
except nbd.Error as e:
    print(e.errno)
' "$(uri ro)")
expect_eq "libnbd write to a read-only export (server's answer)" "EPERM" "$out"
d remove ro
echo "  nbdinfo: size, flags, block sizes, --list, TCP on port $port, unknown export refused, --readonly export"

# ---- nbdcopy both ways -------------------------------------------------------------------------------
nbdcopy "$(uri snap)" "$work/snap.raw"
expect_eq "snapshot read by nbdcopy" "$base_sha" "$(sha "$work/snap.raw")"
head -c 64M /dev/urandom >"$work/new.img"
nbdcopy "$work/new.img" "$(uri vol)"
nbdcopy "$(uri vol)" "$work/vol.raw"
expect_eq "origin after nbdcopy into it" "$(sha "$work/new.img")" "$(sha "$work/vol.raw")"
nbdcopy "$(uri snap)" "$work/snap2.raw"
expect_eq "snapshot after the origin was rewritten" "$base_sha" "$(sha "$work/snap2.raw")"
# 16384 chunks copied: 64 full areas of 256 (chunks 1 + 257k), next free chunk 16450 (after area 64), metadata
# header + areas 0..64 = 66 chunks.
expect_eq "snapshot status after 64 MiB of origin writes" "0 131072 snapshot 131600/163840 528" "$(d status snap)"
echo "  nbdcopy: snapshot = base ($base_sha), 64 MiB copied into the origin, snapshot unchanged"

# ---- nbdsh / libnbd (Debian's python3) ----------------------------------------------------------------
nbdsh -u "$(uri vol)" -c '
data = b"exact offset %d\n" % 777 * 32
h.pwrite(data[:512], 777 * 512, nbd.CMD_FLAG_FUA)
assert h.pread(512, 777 * 512) == data[:512]
h.zero(8192, 1 << 20)
assert h.pread(8192, 1 << 20) == bytes(8192)
h.flush()
'
nbdsh -u "$(uri snap)" -c '
assert h.pread(512, 777 * 512).startswith(b"dmsnap base sector 000777\n")
assert h.pread(4096, 1 << 20) == b"\x11" * 4096
assert h.get_size() == 64 << 20
'
/usr/bin/python3 - "$(uri snap)" <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pread(512, (64 << 20))         # past the end
    raise SystemExit("a read past the end succeeded")
except nbd.Error as e:
    assert e.errno in (22, None) or "Invalid" in str(e), e
h.shutdown()
PY
echo "  nbdsh/libnbd: exact-offset write/read with FUA, zero, flush; snapshot keeps sector 777; read past the end refused"

# ---- qemu-img / qemu-io -----------------------------------------------------------------------------
expect_contains "qemu-img info" "virtual size: 64 MiB (67108864 bytes)" "$(qemu-img info "$(uri snap)")"
qemu-img convert -p -f raw -O qcow2 "$(uri snap)" "$work/snap.qcow2" >/dev/null
qemu-img compare -f raw -F qcow2 "$work/snap.raw" "$work/snap.qcow2" >/dev/null || fail "qemu-img compare: snapshot != base"
qemu-img compare -f raw -F raw "$work/snap.raw" "$(uri snap)" >/dev/null || fail "qemu-img compare over NBD failed"
qemu-io -f raw -c 'write -P 0xab 40M 1M' -c 'read -P 0xab 40M 1M' "$(uri vol)" >/dev/null
qemu-io -f raw -c 'read -P 0x11 40M 1M' "$(uri snap)" >/dev/null || fail "qemu-io: the snapshot changed at 40M"
out=$(qemu-io -f raw -c 'read -P 0xab 40M 4k' "$(uri snap)" 2>&1 || true)
expect_contains "qemu-io: a wrong pattern is detected" "Pattern verification failed" "$out"
echo "  qemu-img info/convert/compare, qemu-io write/read patterns on origin and snapshot"

# ---- fio nbd engine with verification ---------------------------------------------------------------
fio --name=randrw --ioengine=nbd --uri="$(uri vol)" --rw=randrw --bs=4k --iodepth=16 --size=32M \
    --verify=crc32c --verify_fatal=1 --randseed=11 --number_ios=8192 --output-format=json --output="$work/fio.json" >/dev/null
expect_eq "fio errors" 0 "$(jq '.jobs[0].error' "$work/fio.json")"
echo "  fio nbd randrw 4k iodepth 16, crc32c verified: $(jq '.jobs[0].write.total_ios' "$work/fio.json") writes, error 0"

# ---- a real file system on the snapshot --------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
    vol_before=$(nbdcopy "$(uri vol)" - | sha256sum | cut -d' ' -f1)
    mkdir -p "$work/fuse" "$work/fs"
    nbdfuse "$work/fuse/disk.img" "$(uri snap)" &
    fuse_pid=$!
    for _ in $(seq 1 600); do [ -f "$work/fuse/disk.img" ] && break; sleep 0.1; done
    on_exit "umount -l '$work/fuse'; kill_job $fuse_pid"
    [ -f "$work/fuse/disk.img" ] || fail "nbdfuse did not show the snapshot within 60 s"
    loop_attach "$work/fuse/disk.img" || fail "cannot attach a loop device"
    loop=$LOOP
    on_exit "umount '$work/fs'"
    mkfs.ext4 -q -F "$loop"
    mount "$loop" "$work/fs"
    echo "written through the snapshot" >"$work/fs/hello.txt"
    head -c 8M /dev/urandom >"$work/fs/random.bin"
    file_sha=$(sha "$work/fs/random.bin")
    umount "$work/fs"
    e2fsck -fn "$loop" >"$work/fsck.txt" 2>&1 || { cat "$work/fsck.txt"; fail "e2fsck found problems"; }
    mount -o ro "$loop" "$work/fs"
    expect_eq "file on the snapshot" "written through the snapshot" "$(cat "$work/fs/hello.txt")"
    expect_eq "8 MiB file on the snapshot" "$file_sha" "$(sha "$work/fs/random.bin")"
    umount "$work/fs"
    losetup -d "$loop"
    umount "$work/fuse"
    wait "$fuse_pid" || true
    expect_eq "origin after the file system work on the snapshot" "$vol_before" \
        "$(nbdcopy "$(uri vol)" - | sha256sum | cut -d' ' -f1)"
    echo "  ext4 on the snapshot (nbdfuse + losetup): mkfs, mount, 2 files, e2fsck -fn clean, files there; origin unchanged"
else
    echo "  SKIPPED the file system on nbdfuse: needs root and /dev/fuse"
fi

# ---- 50 live refreshes under NBD load -----------------------------------------------------------------
d snapshot remove snap >/dev/null
rm -f "$work/snap.cow"
# Data with fio's verification headers, then a snapshot of it.
fio --name=seed --ioengine=nbd --uri="$(uri vol)" --rw=write --bs=64k --size=32M --verify=crc32c --do_verify=0 \
    --output-format=json --output="$work/seed.json" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 48M >/dev/null
writes0=$(ios writes vol)
reads0=$(ios reads snap)
fio --name=origin --ioengine=nbd --uri="$(uri vol)" --rw=randwrite --bs=4k --size=32M --iodepth=16 \
    --verify=crc32c --verify_backlog=64 --verify_fatal=1 --randseed=7 --time_based --runtime=86400 \
    >"$work/origin-load.txt" 2>&1 &
origin_fio=$!
on_exit "kill_job -INT $origin_fio"
fio --name=seed --ioengine=nbd --uri="$(uri snap)" --rw=write --bs=64k --size=32M --verify=crc32c --verify_only \
    --verify_fatal=1 --iodepth=8 --loops=100000 >"$work/snap-load.txt" 2>&1 &
snap_fio=$!
on_exit "kill_job -INT $snap_fio"
# Both loads are under way once the daemon has completed I/O of each (60 s at most).
for _ in $(seq 1 600); do
    [ "$(ios writes vol)" -gt "$writes0" ] && [ "$(ios reads snap)" -gt "$reads0" ] && break
    kill -0 "$origin_fio" 2>/dev/null || { cat "$work/origin-load.txt"; fail "the origin fio ended before it wrote"; }
    kill -0 "$snap_fio" 2>/dev/null || { cat "$work/snap-load.txt"; fail "the snapshot fio ended before it read"; }
    sleep 0.1
done
writes1=$(ios writes vol)
reads1=$(ios reads snap)
[ "$writes1" -gt "$writes0" ] && [ "$reads1" -gt "$reads0" ] \
    || fail "fio did no I/O within 60 s (origin writes $writes0 -> $writes1, snapshot reads $reads0 -> $reads1)"
refreshed=0
started=$(date +%s)
# At least 50 refreshes, and on until both loads completed I/O during them (a busy machine may
# not schedule fio while 50 refreshes run); 5000 without any I/O is a hang.
while :; do
    d snapshot refresh snap >/dev/null || fail "refresh $((refreshed + 1)) failed"
    refreshed=$((refreshed + 1))
    [ $refreshed -ge 50 ] || continue
    writes2=$(ios writes vol)
    reads2=$(ios reads snap)
    [ "$writes2" -gt "$writes1" ] && [ "$reads2" -gt "$reads1" ] && break
    [ $refreshed -lt 5000 ] || fail "no I/O completed during $refreshed refreshes (origin writes $writes1 -> $writes2, snapshot reads $reads1 -> $reads2)"
done
elapsed=$(( $(date +%s) - started ))
running_job "$origin_fio" || { cat "$work/origin-load.txt"; fail "the origin fio ended before the refreshes did"; }
running_job "$snap_fio" || { cat "$work/snap-load.txt"; fail "the snapshot fio ended before the refreshes did"; }
kill_job -INT "$origin_fio"
kill_job -INT "$snap_fio"
wait "$origin_fio" || true
wait "$snap_fio" || true
for f in origin-load snap-load; do
    grep -q "err= 0" "$work/$f.txt" || { cat "$work/$f.txt"; fail "fio ($f) reported errors"; }
    if grep -qiE "verify failed|bad magic|crc32c: verify" "$work/$f.txt"; then cat "$work/$f.txt"; fail "fio ($f) verification failed"; fi
done
writes=$(grep -oE 'write: IOPS=[^,]+' "$work/origin-load.txt" | head -1)
reads=$(grep -oE 'read: IOPS=[^,]+' "$work/snap-load.txt" | head -1)
echo "  $refreshed refreshes in ${elapsed}s under load: origin fio ($writes, crc32c backlog verify) and snapshot fio ($reads, verify_only): err 0"
echo "  during the refreshes the daemon completed $((writes2 - writes1)) origin writes and $((reads2 - reads1)) snapshot reads"
expect_contains "snapshot still valid" "0 131072 snapshot " "$(d status snap)"
echo "nbd clients: ok"
