#!/usr/bin/env bash
# The daemon's directories and records (issue 16). On a full state directory (a tmpfs of 64 KiB,
# root only) a snapshot create, a resume of a new table fail with ENOSPC and a message naming
# the state directory, and change nothing; after a kill -9 and a restart the devices are exactly
# what was acknowledged (a rename, one rename(2) of its record, still works); once there is room
# the same snapshot is created and survives a kill -9. A run or state directory that is not the
# daemon's own (a symbolic link, a shared 1777 directory) is refused in one line and keeps its
# mode; a symbolic link as daemon.lock or as a temporary record is never followed; a second
# daemon on the same state directory is refused and the first one's records stay intact.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
E2E_KILL=9
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
"$DMSNAP" --version >/dev/null
mode() { stat -c %a "$1"; }
precious="precious: a root-owned file the daemon must not touch"

# refused WHAT NEEDLE ARGS...: a daemon start that must fail with exactly one line containing NEEDLE
# (a daemon that starts instead is stopped after 60 s, and that is a failure).
refused() {
    local what=$1 needle=$2 err rc; shift 2
    set +e
    err=$(timeout 60 "$DMSNAP" daemon "$@" 2>&1 </dev/null); rc=$?
    set -e
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "$what: the daemon started"
    expect_eq "$what: lines of output" 1 "$(printf '%s\n' "$err" | wc -l)"
    expect_contains "$what" "$needle" "$err"
}

# 1. Directories that are not the daemon's own are refused, in one line, and left as they were.
mkdir "$work/shared" "$work/tmp"
chmod 0755 "$work/shared"; chmod 1777 "$work/tmp"
ln -s "$work/shared" "$work/link"
refused "symbolic link as run directory" "run directory $work/link is a symbolic link" --run-dir "$work/link"
refused "1777 run directory" "run directory $work/tmp has mode 1777, not 0700" --run-dir "$work/tmp"
refused "symbolic link as state directory" "state directory $work/link is a symbolic link" \
    --run-dir "$work/run-a" --state-dir "$work/link"
refused "1777 state directory" "state directory $work/tmp is writable by others (mode 1777)" \
    --run-dir "$work/run-a" --state-dir "$work/tmp"
expect_eq "mode of the linked directory" 755 "$(mode "$work/shared")"
expect_eq "mode of the shared directory" 1777 "$(mode "$work/tmp")"
[ ! -e "$work/shared/daemon.lock" ] && [ ! -e "$work/tmp/daemon.lock" ] || fail "a lock file was made in a refused directory"
echo "$precious" >"$work/victim"
mkdir -m 0700 "$work/run-b"
ln -s "$work/victim" "$work/run-b/daemon.lock"
refused "symbolic link as daemon.lock" "the lock file $work/run-b/daemon.lock of the run directory is a symbolic link" \
    --run-dir "$work/run-b"
expect_eq "the target of the linked daemon.lock" "$precious" "$(cat "$work/victim")"
echo "  refused: a linked or 1777 run/state directory (modes kept), a linked daemon.lock (target untouched)"

# 2. A symbolic link as temporary record is never followed; a second daemon on the same state
#    directory is refused and the first one's records stay intact.
STATE="$work/state"
start_daemon "$RUN" --state-dir "$STATE"
d create kept --table "0 100 zero"
record=$(cat "$STATE/kept.device")
ln -s "$work/victim" "$STATE/.vol.device.tmp"
set +e; err=$(d create vol --table "0 100 zero" 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] || fail "create vol succeeded through a linked temporary record"
expect_contains "linked temporary record" "$STATE/.vol.device.tmp is in the way" "$err"
expect_eq "the target of the linked temporary record" "$precious" "$(cat "$work/victim")"
expect_eq "ls after the refused create" "kept	(253:0)" "$(d ls)"
refused "second daemon on the state directory" "another dmsnap daemon (pid $daemon_pid) is using state directory $STATE" \
    --run-dir "$work/run-c" --state-dir "$STATE"
expect_eq "the first daemon's record" "$record" "$(cat "$STATE/kept.device")"
d remove kept
kill -TERM "$daemon_pid"; wait "$daemon_pid" || fail "the daemon did not stop cleanly"; daemon_pid=""
echo "  a linked temporary record is not followed; a second daemon on the state directory is refused"

# 3. A full state directory: changes that cannot be recorded fail and are not made.
[ "$(id -u)" -eq 0 ] || { echo "state safety: ok (the full state directory needs root: skipped)"; exit 0; }
mkdir "$work/small"
mount -t tmpfs -o size=64k,mode=0700 dmsnap-e2e "$work/small"
on_exit "umount -l '$work/small'"
STATE="$work/small/state"
truncate -s 8M "$work/base.img"; truncate -s 4M "$work/cow.img"
base=$(readlink -f "$work/base.img"); cow=$(readlink -f "$work/cow.img")
start_daemon "$RUN" --state-dir "$STATE"
d create origin --table "0 16384 snapshot-origin $base"
dd if=/dev/zero of="$work/small/filler" bs=4k 2>/dev/null || true
d suspend origin
set +e; err=$(d create snap --table "0 16384 snapshot $base $cow P 8" 2>&1); rc=$?; set -e
d resume origin
[ "$rc" -ne 0 ] || fail "a snapshot create on a full state directory was acknowledged"
expect_contains "create on a full state directory" "No space left on device" "$err"
expect_contains "create on a full state directory" "cannot record the new table of snap in the state directory $STATE" "$err"
expect_eq "ls after the refused create" "origin	(253:0)" "$(d ls)"
d load origin --table "0 16384 linear $base 0"
set +e; err=$(d resume origin 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] || fail "a resume of a new table on a full state directory was acknowledged"
expect_contains "resume on a full state directory" "No space left on device" "$err"
expect_eq "the live table after the refused resume" "0 16384 snapshot-origin $base" "$(d table origin)"
d rename origin vol
acked_table=$(d table); acked_ls=$(d ls)
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
rm -f "$RUN/control.sock"
start_daemon "$RUN" --state-dir "$STATE"
expect_eq "table after kill -9 and restart" "$acked_table" "$(d table)"
expect_eq "ls after kill -9 and restart" "$acked_ls" "$(d ls)"
echo "  full state directory: create and resume refused with ENOSPC; after kill -9 the acknowledged state is back"

# 4. With room again the snapshot is made, recorded, and keeps the origin's old data after a kill -9.
rm "$work/small/filler"
echo "old data" | dd of="$base" conv=notrunc status=none
d suspend vol
d create snap --table "0 16384 snapshot $base $cow P 8"
d resume vol
/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri("nbd+unix:///vol?socket=%s" % sys.argv[1])
h.pwrite(b"new data".ljust(4096, b"\0"), 0); h.flush()' "$RUN/nbd.sock"
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
rm -f "$RUN/control.sock"
start_daemon "$RUN" --state-dir "$STATE"
expect_eq "devices after the second restart" "$(printf 'snap\nvol')" "$(d ls | cut -f1)"
expect_eq "the snapshot keeps the old data" "old data" "$(/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri("nbd+unix:///snap?socket=%s" % sys.argv[1])
print(h.pread(512, 0)[:8].decode())' "$RUN/nbd.sock")"
figure state.directories "run/state directories: a symlink, a shared (1777/0755/0775) or foreign-owned one refused in one line with its mode kept; a linked daemon.lock or temporary record never followed"
figure state.full-directory "a full state directory: create and resume refused with ENOSPC, nothing live unrecorded; after kill -9 the restart shows exactly what was acknowledged"
echo "state safety: ok"
