#!/usr/bin/env bash
# State restore: devices created through the CLI come back after a kill -9 and a restart, in
# dependency order (a device stacked on another with dm:NAME, snapshots before origins), with
# the same status and table lines; a device whose backing file vanished is reported and
# skipped while the others come up.
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
d create snap --table "0 16384 snapshot dm:lower $cow P 8"
d resume origin
d create doomed --table "0 100 linear $other 0"
before_status=$(d status); before_table=$(d table)

kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
rm -f "$RUN/control.sock"
rm "$work/other.img"
start
expect_eq "status after kill -9 and restart" "$(echo "$before_status" | grep -v '^doomed')" "$(d status)"
expect_eq "table after kill -9 and restart" "$(echo "$before_table" | grep -v '^doomed')" "$(d table)"
expect_contains "the vanished device is reported" "doomed: not restored" "$(cat "$work/daemon.log")"
expect_contains "restored count" "restored 3 device(s)" "$(cat "$work/daemon.log")"
echo "daemon restore: ok"
