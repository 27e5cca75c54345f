#!/usr/bin/env bash
# The real daemon driven only through the CLI: dmsetup verbs with the kernel's status/table
# lines for the basic fixture's setup, errors with their exit codes, a second daemon refused,
# the run directory and socket modes, bad input (names, tables, garbage and half requests on the
# control socket, removing a device an NBD client holds open) changing nothing, 20 CLI clients
# creating and removing devices at once, a non-root client refused (as root), global options before
# the verb, and SIGTERM → exit 0.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }

"$DMSNAP" --version >/dev/null   # build once before timing-sensitive steps
start_daemon "$RUN"
expect_eq "run directory mode" "700" "$(stat -c %a "$RUN")"
expect_eq "control socket mode" "600" "$(stat -c %a "$RUN/control.sock")"

truncate -s 8M "$work/base.img"
head -c 1048576 /dev/urandom | dd of="$work/base.img" conv=notrunc status=none
truncate -s 4M "$work/cow.img"
base=$(readlink -f "$work/base.img"); cow=$(readlink -f "$work/cow.img")

d create origin --table "0 16384 snapshot-origin $base"
d suspend origin
d create snap --table "0 16384 snapshot $base $cow P 8"
d resume origin
expect_eq "status origin" "0 16384 snapshot-origin " "$(d status origin)"
expect_eq "status snap" "0 16384 snapshot 16/8192 16" "$(d status snap)"
expect_eq "table snap" "0 16384 snapshot $base $cow P 8" "$(d table snap)"
expect_contains "info" "Tables present:    LIVE" "$(d info snap)"
expect_eq "ls" "$(printf 'origin\t(253:0)\nsnap\t(253:1)')" "$(d ls)"
expect_contains "status of all devices" "snap: 0 16384 snapshot 16/8192 16" "$(d status)"
# Global options before the verb, as dmsetup and LVM take them, also with a nested verb.
expect_eq "--run-dir before the verb" "$(d ls)" "$("$DMSNAP" --run-dir "$RUN" ls)"
expect_eq "--json and --run-dir before the verb" "$(d status snap --json)" "$("$DMSNAP" --json --run-dir "$RUN" status snap)"
expect_eq "--run-dir before a nested verb" "$(d snapshot merge --status)" "$("$DMSNAP" --run-dir "$RUN" snapshot merge --status)"

# A refresh (the handover path) keeps the usage.
d load snap --table "0 16384 snapshot $base $cow P 8"
expect_eq "inactive status during a pending handover" "0 16384 snapshot 0/8192 0" "$(d status --inactive snap)"
d resume snap
expect_eq "status after the refresh" "0 16384 snapshot 16/8192 16" "$(d status snap)"

# A second device on the live COW: loads as a handover destination, but its resume needs the
# source suspended (the kernel's answer); with a handover pending, even the load is refused.
set +e
err=$(d create snap3 --table "0 16384 snapshot $base $cow P 8" 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status of a refused resume" 1 "$rc"
expect_contains "refused resume" "dmsnap: resume on snap3 failed: Invalid argument" "$err"
expect_contains "kernel's reason" "Unable to perform snapshot handover until source is suspended." "$err"
d load snap --table "0 16384 snapshot $base $cow P 8"
set +e
err=$(d create snap3 --table "0 16384 snapshot $base $cow P 8" 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status of a refused load" 1 "$rc"
expect_contains "refused load" "dmsnap: reload on snap3 failed: Invalid argument" "$err"
expect_contains "kernel's reason" "snapshot: Snapshot cow pairing for exception table handover failed" "$err"
d clear snap
expect_eq "the refused devices are gone" "$(printf 'origin\t(253:0)\nsnap\t(253:1)')" "$(d ls)"
set +e
err=$(d remove nosuch 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status for a missing device" 3 "$rc"
expect_contains "missing device" "dmsnap: remove on nosuch failed: No such device or address" "$err"
set +e
err=$(d create bad --table "0 100 nosuch" 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status for an unknown target" 1 "$rc"
expect_contains "unknown target" "nosuch: unknown target type" "$err"
expect_eq "json ls" "253:1" "$(d ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snap"])')"

# Bad input: the failed operation and the reason, nothing changes.
before=$(d ls)
bad() {  # bad EXIT-STATUS EXPECTED-TEXT ARGS...
    local want=$1 text=$2; shift 2
    set +e
    err=$(d "$@" 2>&1 >/dev/null); rc=$?
    set -e
    expect_eq "exit status of: $*" "$want" "$rc"
    expect_contains "error of: $*" "$text" "$err"
    # dmsetup's shape: the failed operation, then the reason
    expect_eq "two lines for: $*" 2 "$(printf '%s\n' "$err" | wc -l)"
}
bad 1 "Invalid device name 'a/b'" create a/b --table "0 2048 zero"
bad 1 "Device name too long (at most 127 bytes)" create "$(printf 'n%.0s' $(seq 1 128))" --table "0 2048 zero"
bad 1 "origin: incorrect number of arguments" create o2 --table "0 16384 snapshot-origin"
bad 1 "snapshot: requires 4 or more arguments" create s2 --table "0 16384 snapshot $base $cow P"
bad 1 "Invalid length 'abc' in line: 0 abc linear" create s2 --table "0 abc linear $base 0"
bad 1 "Cannot get origin device" create s2 --table "0 16384 snapshot $work/nosuch.img $cow P 8"
bad 4 "Device origin already exists" create origin --table "0 2048 zero"
# What is not a regular file or block device is refused at once (a FIFO used to hang the daemon).
mkfifo "$work/fifo"
bad 1 "linear: Device lookup failed: $work/fifo is a fifo: a device must be a regular file or a block device" \
    create x --table "0 8 linear $work/fifo 0"
bad 1 "linear: Device lookup failed: /dev/zero is a character device: a device must be a regular file or a block device" \
    create x --table "0 8 linear /dev/zero 0"
expect_eq "nothing changed by bad input" "$before" "$(d ls)"
# A name that is not valid Unicode (a lone surrogate, only possible on the raw socket) is refused.
reply=$(/usr/bin/python3 - "$RUN/control.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"verb":"create","name":"a\\ud800b","table":"0 8 zero"}\n')
r = json.loads(s.makefile().readline())
print(r.get("errno"), r.get("reason"))
PY
)
expect_eq "a lone surrogate in a name" "EINVAL Invalid device name 'a\\ud800b'" "$reply"
expect_eq "nothing changed by a bad name" "$before" "$(d ls)"
# Garbage and a half request on the control socket: an error line / a dropped connection.
reply=$(/usr/bin/python3 - "$RUN/control.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"\x00\xffgarbage\n")
print(s.makefile().readline().strip())
h = socket.socket(socket.AF_UNIX); h.connect(sys.argv[1]); h.sendall(b'{"verb":"create","name":"half'); h.close()
PY
)
expect_contains "garbage on the control socket" '"errno":"EINVAL"' "$reply"
expect_eq "nothing changed by garbage" "$before" "$(d ls)"
# A device an NBD client has open cannot be removed (dmsetup's EBUSY): exit status 4.
PATH="/usr/bin:$PATH" nbdsh -u "nbd+unix:///snap?socket=$RUN/nbd.sock" \
    -c "import os, time; [time.sleep(0.1) for _ in range(6000) if not os.path.exists('$work/release')]" &
holder=$!
on_exit "touch '$work/release'; kill_job $holder"
for _ in $(seq 1 600); do d info snap | grep -q "Open count:        1" && break; sleep 0.1; done
expect_contains "open count while an NBD client is connected" "Open count:        1" "$(d info snap)"
bad 4 "snap is open (1 users)" remove snap
touch "$work/release"
wait "$holder"
expect_eq "still there after a refused remove" "$before" "$(d ls)"

# 20 CLI clients at once, each creating and removing its own device: all succeed, none is left.
pids=()
for i in $(seq 1 20); do
    ( d create "c$i" --table "0 2048 zero" && d status "c$i" >/dev/null && d remove "c$i" ) >"$work/c$i.out" 2>&1 &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || { cat "$work"/c*.out; fail "$failed of 20 concurrent CLI clients failed"; }
expect_eq "state after 20 concurrent clients" "$before" "$(d ls)"
echo "  bad input refused (operation + reason); 20 concurrent CLI clients; an open device is not removed"

# A second daemon on the same run directory is refused.
set +e
err=$(timeout 120 "$DMSNAP" daemon --run-dir "$RUN" 2>&1); rc=$?   # bounded: it must not start
set -e
[ "$rc" -ne 0 ] || fail "a second daemon started"
expect_contains "second daemon" "another dmsnap daemon (pid $daemon_pid) is running with run directory $RUN" "$err"

# A snapshot of an image on a read-only mount (root only: a read-only bind mount): the snapshot
# opens its origin for reading, as the kernel's (spec 1.2 step 3); writes go to the COW and the
# image is untouched; a snapshot-origin table on it, which needs writes, is refused.
mkdir -p "$work/rw" "$work/ro"
if [ "$(id -u)" -eq 0 ] && mount --bind "$work/rw" "$work/ro" 2>/dev/null; then
    on_exit "umount -l '$work/ro' 2>/dev/null || true"
    mount -o remount,bind,ro "$work/ro"
    head -c 8388608 /dev/urandom >"$work/rw/ro.img"
    before_sha=$(sha256sum <"$work/rw/ro.img" | cut -d' ' -f1)
    roimg=$(readlink -f "$work/ro/ro.img")
    truncate -s 4M "$work/ro.cow"
    rocow=$(readlink -f "$work/ro.cow")
    d create rosnap --table "0 16384 snapshot $roimg $rocow P 8"
    expect_eq "status of a snapshot of a read-only image" "0 16384 snapshot 16/8192 16" "$(d status rosnap)"
    PATH="/usr/bin:$PATH" nbdsh -u "nbd+unix:///rosnap?socket=$RUN/nbd.sock" -c '
import hashlib
h.pwrite(b"\xab" * 65536, 1048576)
assert h.pread(65536, 1048576) == b"\xab" * 65536
print(hashlib.sha256(h.pread(1048576, 0)).hexdigest())' >"$work/rosnap.out"
    expect_eq "the snapshot reads the origin where it was not written" \
        "$(head -c 1048576 "$work/rw/ro.img" | sha256sum | cut -d' ' -f1)" "$(cat "$work/rosnap.out")"
    expect_contains "the write made 16 exceptions" "snapshot 144/8192 16" "$(d status rosnap)"
    bad 1 "Cannot get target device" create rowrite --table "0 16384 snapshot-origin $roimg"
    d remove rosnap
    bad 1 "Cannot get target device" create rowrite --table "0 16384 snapshot-origin $roimg"
    d create --readonly rolinear --table "0 16384 linear $roimg 0"
    expect_eq "a read-only linear table reads the image" "$before_sha" \
        "$(PATH="/usr/bin:$PATH" nbdsh -u "nbd+unix:///rolinear?socket=$RUN/nbd.sock" -c '
import hashlib
print(hashlib.sha256(h.pread(8388608, 0)).hexdigest())')"
    d remove rolinear
    umount "$work/ro"
    expect_eq "the read-only image is unchanged" "$before_sha" "$(sha256sum <"$work/rw/ro.img" | cut -d' ' -f1)"
    echo "  an image on a read-only mount: a snapshot of it written through NBD, a --readonly linear table read, snapshot-origin refused, the image unchanged"
else
    echo "  SKIPPED read-only origin: not root, or no bind mount here"
fi

# A non-root client is refused by SO_PEERCRED (root only: needs setpriv and a second user).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    chmod 755 "$work" "$RUN"; chmod 666 "$RUN/control.sock"
    set +e
    err=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp JAVA_HOME="${JAVA_HOME:-}" \
        "$DMSNAP" ls --run-dir "$RUN" 2>&1); rc=$?
    set -e
    chmod 700 "$RUN"; chmod 600 "$RUN/control.sock"
    if echo "$err" | grep -q "control socket $RUN/control.sock as user nobody: Permission denied"; then
        expect_eq "exit status of a refused user" 5 "$rc"
        expect_contains "daemon log" "refused control request from user nobody" "$(cat "$work/daemon.log")"
        echo "  a client running as nobody was refused (SO_PEERCRED)"
    else
        echo "  SKIPPED SO_PEERCRED check: nobody cannot run the launcher here: $(echo "$err" | tail -n 1)"
    fi
fi

kill -TERM "$daemon_pid"
set +e
wait "$daemon_pid"; rc=$?
set -e
daemon_pid=""
expect_eq "daemon exit status after SIGTERM" 0 "$rc"
[ ! -e "$RUN/control.sock" ] || fail "the control socket was left behind"
expect_contains "orderly stop" "stopped" "$(cat "$work/daemon.log")"
echo "daemon cli: ok"
