#!/usr/bin/env bash
# The real daemon driven only through the CLI: dmsetup verbs with the kernel's status/table
# lines for the basic fixture's setup, errors with their exit codes, a second daemon refused,
# the run directory and socket modes, a non-root client refused (as root), and SIGTERM → exit 0.
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

# A second daemon on the same run directory is refused.
set +e
err=$("$DMSNAP" daemon --run-dir "$RUN" 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a second daemon started"
expect_contains "second daemon" "another dmsnap daemon (pid $daemon_pid) is running with run directory $RUN" "$err"

# A non-root client is refused by SO_PEERCRED (root only: needs setpriv and a second user).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    chmod 755 "$work" "$RUN"; chmod 666 "$RUN/control.sock"
    set +e
    err=$(setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp JAVA_HOME="${JAVA_HOME:-}" \
        "$DMSNAP" ls --run-dir "$RUN" 2>&1); rc=$?
    set -e
    chmod 700 "$RUN"; chmod 600 "$RUN/control.sock"
    if echo "$err" | grep -q "permission denied: user nobody"; then
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
