#!/usr/bin/env bash
#
# A second daemon on the same --state-dir (another run directory) is refused with one line and
# changes nothing: the state files stay as they were, it leaves no sockets, the first daemon goes
# on serving. The lock goes with the daemon: after a SIGTERM, and after a kill -9, the next daemon
# on that state directory starts and restores the devices.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"; RUN2="$work/run2"; STATE="$work/state"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
states() { (cd "$STATE" && find . -type f -exec sha256sum {} + | sort); }

"$DMSNAP" --version >/dev/null
truncate -s 16M "$work/base.img"
start_daemon "$RUN" --state-dir "$STATE"
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 8M >/dev/null
before=$(states)

# The second daemon either ends (refused) or says it started: whichever comes first (deadline 120 s).
"$DMSNAP" daemon --run-dir "$RUN2" --state-dir "$STATE" >"$work/second.log" 2>&1 &
second=$!
on_exit "kill_job -9 $second"
for _ in $(seq 1 1200); do
    kill -0 "$second" 2>/dev/null || break
    grep -q "daemon started" "$work/second.log" && fail "a second daemon on the same state directory started: $(cat "$work/second.log")"
    sleep 0.1
done
kill -0 "$second" 2>/dev/null && fail "the second daemon neither ended nor started within 120 s"
rc=0; wait "$second" || rc=$?
out=$(cat "$work/second.log")
expect_eq "exit status of the second daemon" 1 "$rc"
expect_eq "the second daemon says one line" 1 "$(echo "$out" | wc -l)"
expect_contains "it names the state directory" "$STATE" "$out"
expect_contains "it names the daemon holding it" "pid $daemon_pid" "$out"
expect_eq "state files unchanged" "$before" "$(states)"
for f in control.sock nbd.sock; do [ ! -e "$RUN2/$f" ] || fail "the refused daemon left $RUN2/$f"; done
expect_eq "the first daemon still serves (ls)" "snap vol" "$(d ls | awk '{print $1}' | sort | xargs)"
expect_eq "the first daemon still serves (NBD)" 16777216 "$(nbdinfo --size "nbd+unix:///snap?socket=$RUN/nbd.sock")"
d create extra --table "0 100 zero" >/dev/null   # and still records its state
[ "$before" != "$(states)" ] || fail "the first daemon did not record the new device"
d remove extra
echo "  a second daemon on the same state directory: exit 1, '$out'; state unchanged; the first goes on"

# The lock goes with the daemon: after SIGTERM and after kill -9 the next one takes the state directory.
kill -TERM "$daemon_pid"; wait "$daemon_pid" || fail "SIGTERM: exit $?"
daemon_pid=""
start_daemon "$RUN2" --state-dir "$STATE"
expect_contains "restored after a clean stop" "restored 2 device(s)" "$(tail -n 20 "$work/daemon.log")"
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
daemon_pid=""
start_daemon "$RUN" --state-dir "$STATE"
expect_eq "restored after kill -9" "snap vol" "$("$DMSNAP" ls --run-dir "$RUN" | awk '{print $1}' | sort | xargs)"
figure state.second-daemon "a second daemon on the same state directory: exit 1, one line naming the holder; state files unchanged; the lock goes with the daemon (SIGTERM and kill -9)"
echo "state dir lock: ok"
