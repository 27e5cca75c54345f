# Helpers for end-to-end tests (sourced). Each test is a bash script that exits non-zero on failure.
set -euo pipefail
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DMSNAP="$E2E_ROOT/dmsnap"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
}

# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() {
    case "$3" in *"$2"*) ;; *) fail "$1: [$2] not found in [$3]" ;; esac
}

# A daemon for one test: start_daemon RUN_DIR [ARGS...] starts it in the background with its log
# in $E2E_WORK/daemon.log and waits for its control socket; the EXIT trap (e2e_cleanup) stops it
# (SIGKILL when E2E_KILL=9), removes $E2E_WORK and keeps the test's exit status.
E2E_WORK=$(mktemp -d)
daemon_pid=""
e2e_hooks=()
# on_exit COMMAND...: run COMMAND (e.g. unmount, detach a loop device) at exit, before the
# daemon is stopped; hooks run last-registered first and their failures are ignored.
on_exit() {
    e2e_hooks+=("$*")
}
# kill_job [-SIGNAL] PID: signals PID (SIGTERM by default) only while it is a running background
# job of this shell. A pid a hook names may have ended long before the exit, and once the machine
# has gone round pid_max (32768 in CI, where every JVM thread takes a pid too) that number may be
# another process's: a job bash still lists as running has not been reaped, so it is still ours.
kill_job() {
    local sig=-TERM
    case "$1" in -*) sig=$1; shift ;; esac
    if running_job "$1"; then
        kill "$sig" "$1" 2>/dev/null || true
    fi
}
# running_job PID: whether PID is a running background job of this shell (see kill_job).
running_job() {
    local p
    for p in $(jobs -pr); do
        [ "$p" != "$1" ] || return 0
    done
    return 1
}
e2e_cleanup() {
    local rc=$?
    local i
    for ((i = ${#e2e_hooks[@]} - 1; i >= 0; i--)); do
        eval "${e2e_hooks[$i]}" >/dev/null 2>&1 || true
    done
    if [ -n "$daemon_pid" ]; then
        kill_job "-${E2E_KILL:-TERM}" "$daemon_pid"
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$E2E_WORK"
    exit $rc
}
trap e2e_cleanup EXIT

# loop_attach FILE [LOSETUP OPTIONS...]: attaches FILE to a free loop device, sets LOOP to it and
# detaches it at exit (not in a subshell: the exit hook must be this shell's). losetup's "find a free one, then bind it" is not atomic: another process
# (a concurrent test suite, udev) may bind the one it found first, and then it says "Device or
# resource busy"; that one refusal is tried again (a bounded number of times), any other fails.
loop_attach() {
    local file=$1 out try
    shift
    for try in $(seq 1 50); do
        if out=$(losetup --find --show "$@" "$file" 2>&1); then
            on_exit "losetup -d $out"
            LOOP=$out
            return 0
        fi
        case "$out" in *"Device or resource busy"*) continue ;; esac
        break
    done
    echo "losetup $file: $out" >&2
    return 1
}

# It waits for this daemon's own "started" line, so a control.sock a killed daemon left behind (the
# new one replaces it) does not count: nothing needs to be removed before a restart.
start_daemon() {
    local run=$1; shift
    "$DMSNAP" daemon --run-dir "$run" "$@" 2>>"$E2E_WORK/daemon.log" &
    daemon_pid=$!
    await_daemon "$E2E_WORK/daemon.log" "$run" "$daemon_pid"
}

# await_daemon LOG RUN PID: waits for daemon PID's own "daemon started" line in LOG and its
# control socket in RUN (a socket alone may be a stopped daemon's, or bound before the lines
# a test then reads are written); fails when it exits first or takes over 120 s.
await_daemon() {
    local log=$1 run=$2 pid=$3
    local deadline=$((SECONDS + 120))   # a busy machine starts a JVM slowly
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -q "daemon started (pid $pid)" "$log" 2>/dev/null && [ -S "$run/control.sock" ] && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "the daemon exited at start"; }
        sleep 0.1
    done
    cat "$log" >&2
    fail "the daemon (pid $pid) did not start within 120 s (no 'daemon started' line and $run/control.sock)"
}

# figure KEY VALUE: a figure of this test (cases, faults, writes checked), printed and appended to
# $DMSNAP_FIGURES when set (./test.sh), for scripts/reliability-report.sh and RELIABILITY.md.
figure() {
    echo "  figure $1 = $2"
    if [ -n "${DMSNAP_FIGURES:-}" ]; then
        printf '%s\t%s\n' "$1" "$2" >>"$DMSNAP_FIGURES"
    fi
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; fails after SECONDS.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "$what: not within $limit s"
        sleep 0.1
    done
}

# random_pause MIN_MS MAX_MS: sleeps a random time drawn from $RANDOM (RANDOM=SEED makes the
# sequence repeat): a random moment, for a kill; never a wait for something to happen.
random_pause() {
    local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# kill9_daemon: SIGKILL to this test's daemon, waits until it is gone.
kill9_daemon() {
    kill -9 "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
}

# ---- libnbd writers with a durability model across daemon restarts (writers_driver.py) ------------
# writers_start DIR DRIVER_ARGS...: starts the driver (its status lines in DIR/status.jsonl, its
# output in DIR/driver.out) and waits until its load runs; one still running at exit is killed.
writers_pid=""
writers_start() {
    writers_dir=$1
    shift
    [ -n "${writers_hooked:-}" ] || { on_exit writers_kill; writers_hooked=1; }
    /usr/bin/python3 "$E2E_ROOT/tests/e2e/writers_driver.py" --status "$writers_dir/status.jsonl" "$@" \
        >"$writers_dir/driver.out" 2>&1 &
    writers_pid=$!
    wait_until 60 "the writers started" writers_seen running 0
}
writers_kill() {
    [ -z "$writers_pid" ] || kill_job -9 "$writers_pid"
}

# writers_seen EVENT CYCLE: the driver reported EVENT after its CYCLEth reconnect ("running": its load
# runs again, after its check; "writing": a write of that cycle was acknowledged); fails if it ended.
writers_seen() {
    kill -0 "$writers_pid" 2>/dev/null || { cat "$writers_dir/driver.out" >&2; fail "the writers' driver ended"; }
    grep -qs "\"event\": \"$1\", \"cycle\": $2}" "$writers_dir/status.jsonl"
}

# writers_writing CYCLE: waits until a write was acknowledged after the CYCLEth reconnect.
writers_writing() {
    wait_until 180 "a write acknowledged in cycle $1 of the writers" writers_seen writing "$1"
}

# writers_resumed CYCLE WHAT: waits until the writers reconnected after WHAT (a daemon stop or kill)
# and checked both views: nothing durable lost.
writers_resumed() {
    wait_until 180 "the writers reconnected after $2" writers_seen running "$1"
    local lost
    lost=$(writers_field "$1" lost)
    [ "$lost" = 0 ] || { grep -F "LOST after reconnect $1:" "$writers_dir/driver.out" >&2; fail "$2: $lost block(s) lost what was flushed or written with FUA (seen above)"; }
}

# writers_field CYCLE FIELD: a count of the check after the CYCLEth reconnect; "done" as CYCLE: the
# totals the driver wrote when it ended.
writers_field() {
    /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    want = {"event": "done"} if sys.argv[2] == "done" else {"event": "verified", "cycle": int(sys.argv[2])}
    if all(e.get(k) == v for k, v in want.items()):
        print(e[sys.argv[3]])
        break
else:
    sys.exit("no %s event in %s" % (sys.argv[2], sys.argv[1]))' "$writers_dir/status.jsonl" "$1" "$2"
}

# writers_stop: SIGTERM to the driver: it flushes, checks both views once more and ends; fails on a loss.
writers_stop() {
    kill -TERM "$writers_pid"
    local rc=0
    wait "$writers_pid" || rc=$?
    writers_pid=""
    [ $rc -eq 0 ] || { cat "$writers_dir/driver.out" >&2; fail "the writers found lost writes (exit $rc)"; }
}

# writers_summary: the driver's closing line of counts.
writers_summary() {
    tail -n 1 "$writers_dir/driver.out" | sed 's/^writers: //'
}
