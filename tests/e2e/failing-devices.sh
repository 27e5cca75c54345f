#!/usr/bin/env bash
# Failing devices under the real daemon (issue 16, point 2), the faults injected from outside:
#   1. COW read EIO: the COW is a file that nbdfuse serves from nbdkit (memory plugin, error
#      filter, errors only while a trigger file exists): a snapshot read of a chunk in the COW
#      fails with EIO, and nothing is invalidated (the kernel hands a remapped bio's error back);
#   2. COW write EIO, the same COW: the next copy-out invalidates that snapshot;
#   3. ENOSPC: a sparse COW on a small loop-mounted ext4 that fills up;
#   4. a COW truncated to nothing under the daemon: reads fail with EIO, the next copy-out
#      invalidates it, the daemon lives on;
#   5. origin read EIO (the origin file served the same way): that read fails alone, and a
#      snapshot read of a chunk it takes from the origin;
#   6. origin read EIO during a copy-out: the snapshot that needed the copy is invalidated, the
#      one that had the chunk is not, the origin write goes ahead;
#   7. autoextend (--autoextend-threshold 50) on a full file system: "cannot grow" said once,
#      then the snapshot fills and is invalidated.
# Each time: only that snapshot is Invalid (dmsnap status); one ERROR line naming the COW (or the
# origin) and the errno in the daemon log; dmsnap_snapshot_invalidations_total counts it; the
# origins and the snapshots that must not notice read what a model says (libnbd); a client of an
# unrelated linear device writes and reads back all along without an error; an invalidated COW
# is not written again (its checksum or size stays); no stack trace in the log; SIGTERM stops
# the daemon at the end.
# The daemon runs with --cache none, so that every fault meets the I/O that hits the device: in
# writeback (the default) the page cache answers reads of what it holds and takes writes whose
# errors come at the next FLUSH or commit (fdatasync), which CacheModeTest covers in the engine.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
SOCK="$RUN/nbd.sock"
MODEL="$work/model"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed (./test.sh installs it as root)"; }
for tool in nbdkit nbdfuse mkfs.ext4 curl; do need "$tool"; done
[ "$(id -u)" -eq 0 ] || { echo "  SKIPPED failing devices: needs root (loop mounts, FUSE)"; exit 0; }
[ -e /dev/fuse ] || { echo "  SKIPPED failing devices: no /dev/fuse"; exit 0; }
io() { /usr/bin/python3 "$E2E_ROOT/tests/e2e/failing_devices.py" "$@"; }
# eio DEV read|write OFFSET LEN: that request fails with EIO
eio() {
    io eio "$SOCK" "$@" >/dev/null 2>"$work/eio.err" || { cat "$work/eio.err" >&2; fail "$1: $2 at $3 did not fail with EIO"; }
}
status() { d status "$1" | sed "s/^$1: //"; }
log_errors() { grep -c " ERROR " "$work/daemon.log" || true; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metric() { curl -sS --max-time 10 "http://127.0.0.1:$port/metrics" | awk -v k="dmsnap_snapshot_invalidations_total{reason=\"$1\"}" '$1 == k { print $2 }'; }
# expect_line WHAT TEXT: the daemon log has exactly one line containing TEXT
expect_line() {
    local n
    n=$(grep -cF -- "$2" "$work/daemon.log" || true)
    [ "$n" = 1 ] || { grep -F -- "$2" "$work/daemon.log" >&2 || true; fail "$1: $n lines with [$2], expected 1"; }
}
expect_valid() { case "$(status "$1")" in *snapshot\ [0-9]*/[0-9]*\ [0-9]*) ;; *) fail "$1 is not valid: $(status "$1")" ;; esac; }
expect_invalid() { expect_eq "$1 status" "0 16384 snapshot Invalid" "$(status "$1")"; }
cases=0
invalidated=0

# ---- devices from outside: FUSE files over nbdkit with the error filter, two small ext4 -------------
mkdir -p "$work/fuse" "$work/fuse2" "$work/ext4" "$work/ext4b" "$MODEL"
nbdkit -U "$work/cow.sock" -P "$work/cow-nbdkit.pid" --filter=error memory 64M \
    error-pwrite=EIO error-pwrite-rate=100% error-pwrite-file="$work/cow-wtrig" \
    error-pread=EIO error-pread-rate=100% error-pread-file="$work/cow-rtrig"
on_exit "kill \$(cat '$work/cow-nbdkit.pid')"
nbdfuse "$work/fuse/cow.img" "nbd+unix:///?socket=$work/cow.sock" 2>>"$work/nbdfuse.log" & # the injected errors, seen by nbdfuse
on_exit "umount -l '$work/fuse'"
head -c 8M /dev/urandom >"$work/base2.img"
cp "$work/base2.img" "$MODEL/vol2.img"
nbdkit -U "$work/origin.sock" -P "$work/origin-nbdkit.pid" --filter=error file "$work/base2.img" \
    error-pread=EIO error-pread-rate=100% error-pread-file="$work/origin-rtrig"
on_exit "kill \$(cat '$work/origin-nbdkit.pid')"
nbdfuse "$work/fuse2/origin.img" "nbd+unix:///?socket=$work/origin.sock" 2>>"$work/nbdfuse.log" &
on_exit "umount -l '$work/fuse2'"
for fs in ext4 ext4b; do
    truncate -s 8M "$work/$fs.img"
    mkfs.ext4 -q "$work/$fs.img"
    loop_attach "$work/$fs.img" || fail "cannot attach a loop device"
    mount "$LOOP" "$work/$fs"
    on_exit "umount -l '$work/$fs'"
done
for _ in $(seq 1 1200); do # nbdfuse mounts in the background; a loaded machine may take long
    [ -f "$work/fuse/cow.img" ] && [ -f "$work/fuse2/origin.img" ] && break
    sleep 0.1
done
[ -f "$work/fuse/cow.img" ] && [ -f "$work/fuse2/origin.img" ] || fail "nbdfuse did not mount its files"

start_daemon "$RUN" --cache none --metrics "127.0.0.1:$port" --autoextend-threshold 50 --autoextend-percent 50
stop_now() { if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""; fi; }
on_exit stop_now # first: the daemon lets go of the files before they are unmounted

head -c 8M /dev/urandom >"$work/base.img"
cp "$work/base.img" "$MODEL/vol.img"
truncate -s 4M "$work/plain.img"
d origin create vol "$work/base.img" >/dev/null
d create lin --table "0 8192 linear $work/plain.img 0" >/dev/null
d snapshot create vol keep --cow "$work/keep.cow" --cow-size 24M >/dev/null
io snapshot "$MODEL" vol keep >/dev/null
d snapshot create vol s-eio --cow "$work/fuse/cow.img" >/dev/null
io snapshot "$MODEL" vol s-eio >/dev/null
expect_eq "metric io_error at start" "0.0" "$(metric io_error)"
expect_eq "metric cow_full at start" "0.0" "$(metric cow_full)"
io hammer "$SOCK" lin "$work/stop-hammer" >"$work/hammer.out" 2>&1 &
hammer=$!
on_exit "touch '$work/stop-hammer'"

io writes "$SOCK" "$MODEL" vol 0 4 1 >/dev/null          # chunks 0-3: copied into keep and s-eio
io write "$SOCK" "$MODEL" s-eio 1048576 4096 2 >/dev/null # s-eio's own chunk 256
io write "$SOCK" "$MODEL" keep 1052672 4096 3 >/dev/null

# ---- 1. COW read EIO -------------------------------------------------------------------------------
touch "$work/cow-rtrig"
eio s-eio read 1048576 4096            # in the COW: EIO
io read "$SOCK" "$MODEL" s-eio 6291456 4096 >/dev/null       # taken from the origin: fine
io read "$SOCK" "$MODEL" keep 1048576 8192 >/dev/null
rm "$work/cow-rtrig"
expect_valid s-eio
expect_eq "ERROR lines after a COW read error" 0 "$(log_errors)"
io verify "$SOCK" "$MODEL" s-eio >/dev/null
cases=$((cases + 1))
echo "  COW read EIO: that read failed, s-eio stays valid and reads what it should"

# ---- 2. COW write EIO ------------------------------------------------------------------------------
touch "$work/cow-wtrig"
io writes "$SOCK" "$MODEL" vol 512 1 4 >/dev/null   # chunk 512: the copy into s-eio fails, the write goes ahead
rm "$work/cow-wtrig"
expect_invalid s-eio
expect_valid keep
expect_line "the invalidation of s-eio" "s-eio: Invalidating snapshot: Error reading/writing. COW $work/fuse/cow.img: pwrite(path=$work/fuse/cow.img, offset="
expect_contains "its errno" "failed: EIO (Input/output error)" "$(grep -F 's-eio: Invalidating' "$work/daemon.log")"
expect_eq "ERROR lines" 1 "$(log_errors)"
expect_eq "metric io_error" "1.0" "$(metric io_error)"
cow_sum=$(sha256sum "$work/fuse/cow.img" | cut -d' ' -f1)
io writes "$SOCK" "$MODEL" vol 600 16 5 >/dev/null
eio s-eio read 0 4096
eio s-eio write 0 4096
expect_eq "s-eio's COW after its invalidation" "$cow_sum" "$(sha256sum "$work/fuse/cow.img" | cut -d' ' -f1)"
io verify "$SOCK" "$MODEL" vol >/dev/null
io verify "$SOCK" "$MODEL" keep >/dev/null
cases=$((cases + 1)); invalidated=$((invalidated + 1))
echo "  COW write EIO: s-eio Invalid alone, one line, counted, its COW not written again"

# ---- 3. ENOSPC: a sparse COW on a full ext4 ----------------------------------------------------------
d snapshot create vol s-full --cow "$work/ext4/s-full.cow" --cow-size 64M >/dev/null
io snapshot "$MODEL" vol s-full >/dev/null
io writes "$SOCK" "$MODEL" vol 0 2048 6 >/dev/null        # 8 MiB of copies; the ext4 has about 6 MiB
expect_invalid s-full
expect_valid keep
expect_line "the invalidation of s-full" "s-full: Invalidating snapshot: Error reading/writing. COW $work/ext4/s-full.cow: "
expect_contains "ENOSPC" "failed: ENOSPC (No space left on device)" "$(grep -F 's-full: Invalidating' "$work/daemon.log")"
expect_eq "ERROR lines" 2 "$(log_errors)"
expect_eq "metric io_error" "2.0" "$(metric io_error)"
io verify "$SOCK" "$MODEL" vol >/dev/null
io verify "$SOCK" "$MODEL" keep >/dev/null
full_sum=$(sha256sum "$work/ext4/s-full.cow" | cut -d' ' -f1)
io writes "$SOCK" "$MODEL" vol 100 50 8 >/dev/null
expect_eq "s-full's COW after its invalidation" "$full_sum" "$(sha256sum "$work/ext4/s-full.cow" | cut -d' ' -f1)"
# The header says invalid: reactivated, it is Invalid at once.
table=$(d table s-full | sed 's/^s-full: //')
d remove s-full >/dev/null
d suspend vol >/dev/null
d create s-full --table "$table" >/dev/null
d resume vol >/dev/null
expect_invalid s-full
expect_line "reloaded invalid" "s-full: Snapshot is marked invalid."
cases=$((cases + 1)); invalidated=$((invalidated + 1))
echo "  ENOSPC on a full ext4: s-full Invalid alone, one line, counted, reactivated Invalid"

# ---- 4. a COW truncated under the daemon ------------------------------------------------------------
d snapshot create vol s-trunc --cow "$work/s-trunc.cow" --cow-size 8M >/dev/null
io snapshot "$MODEL" vol s-trunc >/dev/null
io writes "$SOCK" "$MODEL" vol 1500 2 9 >/dev/null
io write "$SOCK" "$MODEL" s-trunc 409600 4096 10 >/dev/null
truncate -s 0 "$work/s-trunc.cow"
eio s-trunc read 409600 4096    # its chunk is gone: EIO, not zeroes
expect_valid s-trunc                                  # (as the kernel: a failed read invalidates nothing)
eio s-trunc read 409600 4096    # the status re-read the size: still EIO
io writes "$SOCK" "$MODEL" vol 1600 1 11 >/dev/null   # the next copy-out finds the COW shrunk
expect_invalid s-trunc
expect_valid keep
expect_line "the invalidation of s-trunc" "s-trunc: Invalidating snapshot: Unable to allocate exception. COW $work/s-trunc.cow shrank to 0 sectors, below the 40 sectors in use"
expect_line "no header on a truncated COW" "$work/s-trunc.cow: write header failed: the COW is 0 bytes, shorter than its header chunk"
expect_eq "ERROR lines" 3 "$(log_errors)"
expect_eq "metric cow_full" "1.0" "$(metric cow_full)"
io writes "$SOCK" "$MODEL" vol 1700 20 12 >/dev/null
expect_eq "the truncated COW stays empty" 0 "$(stat -c %s "$work/s-trunc.cow")"
io verify "$SOCK" "$MODEL" vol >/dev/null
io verify "$SOCK" "$MODEL" keep >/dev/null
cases=$((cases + 1)); invalidated=$((invalidated + 1))
echo "  truncated COW: reads EIO, then s-trunc Invalid alone, one line, counted, the daemon lives on"

# ---- 5, 6. origin read EIO ---------------------------------------------------------------------------
d origin create vol2 "$work/fuse2/origin.img" >/dev/null
d snapshot create vol2 s2 --cow "$work/s2.cow" --cow-size 12M >/dev/null
io snapshot "$MODEL" vol2 s2 >/dev/null
d snapshot create vol2 s2-had --cow "$work/s2-had.cow" --cow-size 12M >/dev/null
io snapshot "$MODEL" vol2 s2-had >/dev/null
io write "$SOCK" "$MODEL" s2-had 2097152 4096 13 >/dev/null # s2-had has chunk 512 already
touch "$work/origin-rtrig"
eio vol2 read 2097152 4096
eio s2 read 2097152 4096              # no exception there: read from the origin
io read "$SOCK" "$MODEL" s2-had 2097152 4096 >/dev/null     # in its COW: fine
io read "$SOCK" "$MODEL" vol 2097152 4096 >/dev/null
expect_valid s2
expect_valid s2-had
expect_eq "ERROR lines after origin read errors" 3 "$(log_errors)"
cases=$((cases + 1))
echo "  origin read EIO: those reads failed alone, nothing invalidated"
io writes "$SOCK" "$MODEL" vol2 512 1 14 >/dev/null         # the copy into s2 cannot read: s2 Invalid, the write goes ahead
rm "$work/origin-rtrig"
expect_invalid s2
expect_valid s2-had
expect_line "the invalidation of s2" "s2: Invalidating snapshot: Error reading/writing. origin $work/fuse2/origin.img: pread(path=$work/fuse2/origin.img, offset=2097152, length=4096) failed: EIO (Input/output error)"
expect_eq "ERROR lines" 4 "$(log_errors)"
expect_eq "metric io_error" "3.0" "$(metric io_error)"
io verify "$SOCK" "$MODEL" vol2 >/dev/null
io verify "$SOCK" "$MODEL" s2-had >/dev/null
cases=$((cases + 1)); invalidated=$((invalidated + 1))
echo "  origin read EIO in a copy-out: s2 Invalid, s2-had (had the chunk) valid, the origin write done"

# ---- 7. autoextend on a full file system ------------------------------------------------------------
d snapshot create vol s-auto --cow "$work/ext4b/s-auto.cow" --cow-size 1M --preallocation full >/dev/null
io snapshot "$MODEL" vol s-auto >/dev/null
dd if=/dev/zero of="$work/ext4b/filler" bs=64k 2>/dev/null || true   # the file system is full now
io writes "$SOCK" "$MODEL" vol 0 140 15 >/dev/null         # 142 of 256 chunks: past the 50% threshold
grow="s-auto: cannot grow COW $work/ext4b/s-auto.cow from 1048576 to 1572864 bytes: fallocate(path=$work/ext4b/s-auto.cow, offset=1048576, length=524288) failed: ENOSPC (No space left on device)"
for _ in $(seq 1 600); do grep -qF -- "$grow" "$work/daemon.log" && break; sleep 0.1; done
expect_line "autoextend on a full file system" "$grow"
expect_valid s-auto
io writes "$SOCK" "$MODEL" vol 140 120 16 >/dev/null       # the COW has 254 data chunks: it fills
expect_invalid s-auto
expect_line "the invalidation of s-auto" "s-auto: Invalidating snapshot: Unable to allocate exception. COW $work/ext4b/s-auto.cow is full (2048 sectors)"
expect_line "said once" "$grow"
expect_eq "ERROR lines" 6 "$(log_errors)"
expect_eq "metric cow_full" "2.0" "$(metric cow_full)"
expect_eq "the COW did not grow" 1048576 "$(stat -c %s "$work/ext4b/s-auto.cow")"
io verify "$SOCK" "$MODEL" vol >/dev/null
io verify "$SOCK" "$MODEL" keep >/dev/null
cases=$((cases + 1)); invalidated=$((invalidated + 1))
echo "  autoextend on a full file system: said once, then s-auto full and Invalid alone"

# ---- the bystanders, the log, the stop -------------------------------------------------------------
touch "$work/stop-hammer"
wait "$hammer" || { cat "$work/hammer.out" >&2; fail "the client of lin saw an error"; }
lin_ops=$(cat "$work/hammer.out")
[ "$lin_ops" -gt 0 ] || fail "the client of lin did nothing"
for dev in vol keep vol2 s2-had; do io verify "$SOCK" "$MODEL" "$dev" >/dev/null; done
traces=$(grep -cE '^[[:space:]]+at |Exception in thread' "$work/daemon.log" || true)
expect_eq "stack traces in the daemon log" 0 "$traces"
kill -TERM "$daemon_pid"
rc=0
for _ in $(seq 1 600); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "SIGTERM did not stop the daemon within 60 s"
wait "$daemon_pid" || rc=$?
daemon_pid=""
expect_eq "daemon exit status" 0 "$rc"
echo "failing devices (e2e): $cases fault cases, $invalidated snapshots invalidated alone (one ERROR line each), lin client: $lin_ops verified writes, 0 errors"
figure faults.e2e "$cases faults from outside (nbdkit error filter through nbdfuse on a COW and an origin, a sparse COW on a full loop-mounted ext4, a COW truncated under the daemon, autoextend on a full file system): $invalidated snapshots invalidated alone, one ERROR line each, 0 stack traces; a client of another export: $lin_ops verified writes, 0 errors; SIGTERM exit 0"
