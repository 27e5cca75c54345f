#!/usr/bin/env bash
# Restart with clients attached (issue 16, point 5). A daemon with --state-dir, an origin and a
# snapshot; libnbd writers on both (writers_driver.py: writes, FUA writes and FLUSHes, several in
# flight, a model of what is durable) keep writing while the daemon is
#   (a) stopped with SIGTERM at a random moment: exit 0, "stopped"; restarted; the writers reconnect
#       and read back every flushed or FUA write (and the counts say whether every acknowledged one
#       survived); a qemu-io client with reconnect-delay carries on across the restart;
#   (b) killed with SIGKILL at random moments (--kills N, default 10) and restarted each time: every
#       flushed/FUA write is there, every other block holds its last durable content or a later
#       write, the snapshot never an origin write;
#   (c) restarted without removing anything the killed daemon left (sockets, lock file);
#   (d) a second daemon on the same run directory is refused with one clear line while the first
#       goes on serving.
# At the end `dmsnap cow check` finds the snapshot's COW clean.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
work=$E2E_WORK
RUN="$work/run"; STATE="$work/state"; SOCK="$RUN/nbd.sock"
kills=${RESTART_KILLS:-10}
while [ $# -gt 0 ]; do
    case "$1" in
        --kills) kills=$2; shift 2 ;;
        *) fail "usage: restart.sh [--kills N]" ;;
    esac
done
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
log() { cat "$work/daemon.log"; }

# start_daemon waits for this daemon's own "started" line: nothing a killed daemon left (sockets,
# lock file) is removed before a restart.
# directsync, the kernel's rule: every acknowledged write is durable, so none may be lost (crash.sh
# covers the other cache modes, where only flushed and FUA writes are).
start() { start_daemon "$RUN" --state-dir "$STATE" --cache directsync; }
pause() { random_pause 300 1500; }

"$DMSNAP" --version >/dev/null
/usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import nbdraw; nbdraw.write_base_image(sys.argv[2], 1, 32 << 20)' \
    "$here" "$work/base.img"
start
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 40M >/dev/null
writers_start "$work" --sock "$SOCK"
cycle=0

# ---- (a) SIGTERM under load, with a qemu-io client that reconnects -----------------------------------
coproc QEMU { exec qemu-io --image-opts "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=$SOCK,file.export=vol,file.reconnect-delay=600" 2>&1; }
# bash unsets QEMU_PID as soon as the coprocess has exited: keep it for the wait after "quit".
qemu_pid=$QEMU_PID
on_exit "kill_job -9 $qemu_pid"
# qemu-io reads one command per wake-up of its stdin: send the next only after the prompt ("qemu-io> ")
# that follows the last one's output.
qemu_prompt() {
    IFS= read -r -d '>' -t 150 qemu_out <&"${QEMU[0]}" || fail "qemu-io: no prompt within 150 s"
    echo "$qemu_out" >>"$work/qemu.log"
}
qemu() {   # qemu COMMAND [EXPECTED]
    echo "$1" >&"${QEMU[1]}"
    qemu_prompt
    case "$qemu_out" in *rror*|*failed*) fail "qemu-io $1: $qemu_out" ;; esac
    [ -z "${2:-}" ] || expect_contains "qemu-io $1" "$2" "$qemu_out"
}
qemu_prompt
qemu "write -P 0x5a 28M 64k" "wrote 65536/65536 bytes at offset 29360128"
pause
kill -TERM "$daemon_pid"
rc=0; wait "$daemon_pid" || rc=$?
expect_eq "exit status after SIGTERM under load" 0 "$rc"
expect_eq "last log line after SIGTERM" "stopped" "$(log | tail -n 1 | sed 's/.* - //')"
# The sockets go; daemon.lock stays (unlocked): deleting it would let two daemons start during a stop.
for f in control.sock nbd.sock; do [ ! -e "$RUN/$f" ] || fail "$f left after a clean stop"; done
start
cycle=1
writers_resumed 1 SIGTERM
term_not_kept=$(writers_field 1 acked_not_kept)
qemu "read -P 0x5a 28M 64k" "read 65536/65536 bytes at offset 29360128"
qemu "write -P 0x5b 29M 64k" "wrote 65536/65536 bytes at offset 30408704"
qemu "flush"
echo "quit" >&"${QEMU[1]}"
wait "$qemu_pid" || true
expect_eq "qemu-io's writes before and after the restart" "5a 5b" "$(/usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD(); h.connect_uri("nbd+unix:///vol?socket=" + sys.argv[1])
print("%02x %02x" % (h.pread(512, 28 << 20)[0], h.pread(512, 29 << 20)[0]))
h.shutdown()' "$SOCK")"
echo "  (a) SIGTERM under load: exit 0, 'stopped', its sockets gone; writers reconnected after" \
    "$(writers_field 1 tries) refused tries: $(writers_field 1 verified) durable writes read back, lost 0," \
    "acknowledged but unflushed writes not kept: $term_not_kept; qemu-io (reconnect-delay) read its write and wrote again"

# ---- (b)+(c) kill -9 at random moments, restarted over what the killed daemon left ---------------------
for i in $(seq 1 "$kills"); do
    pause
    kill9_daemon
    for f in control.sock nbd.sock daemon.lock; do [ -e "$RUN/$f" ] || fail "kill -9 left no $f (the restart was to show it is replaced)"; done
    start
    cycle=$((cycle + 1))
    writers_resumed "$cycle" "kill $i"
done
expect_contains "status of the snapshot after the kills" "0 65536 snapshot " "$(d status snap)"
echo "  (b)+(c) $kills kill -9 at random moments under load, restarted over the stale sockets and lock file each time"

# ---- (d) a second daemon on the same run directory ----------------------------------------------------
rc=0
out=$(timeout 120 "$DMSNAP" daemon --run-dir "$RUN" --state-dir "$work/state2" 2>&1) || rc=$?   # bounded: it must not start
expect_eq "exit status of a second daemon on the same run directory" 1 "$rc"
expect_contains "second daemon's message" "dmsnap: another dmsnap daemon (pid $daemon_pid) is running with run directory $RUN" "$out"
expect_eq "the second daemon said one line" 1 "$(echo "$out" | wc -l)"
expect_eq "the lock file still names the first daemon" "$daemon_pid" "$(cat "$RUN/daemon.lock")"
expect_eq "the first daemon still serves (ls)" "snap vol" "$(d ls | awk '{print $1}' | sort | xargs)"
expect_eq "the first daemon still serves (NBD)" 33554432 "$(nbdinfo --size "nbd+unix:///snap?socket=$SOCK")"
echo "  (d) a second daemon on the same run directory: exit 1, '$out'; the first goes on"

# ---- the end: the writers stop and check everything once more; a clean stop; the COW checks clean --------
writers_stop
kill -TERM "$daemon_pid"
rc=0; wait "$daemon_pid" || rc=$?
daemon_pid=""
expect_eq "exit status of the final SIGTERM" 0 "$rc"
out=$("$DMSNAP" cow check "$work/snap.cow" --origin "$work/base.img" 2>&1) || fail "cow check: $out"
not_kept=0
for c in $(seq 2 "$cycle"); do not_kept=$((not_kept + $(writers_field "$c" acked_not_kept))); done
echo "restart: kills $kills (+1 SIGTERM); $(writers_summary)"
echo "  the snapshot never showed an origin write; acknowledged writes not kept: $term_not_kept after SIGTERM, $not_kept after" \
    "the kills (directsync: a write is acknowledged only once durable); cow check clean"
expect_eq "acknowledged writes not kept after the kills (directsync)" 0 "$not_kept"
expect_eq "acknowledged writes not kept after SIGTERM" 0 "$term_not_kept"
figure restart.kill9 "$kills kill -9 and 1 SIGTERM at random moments under load: $(writers_summary); acknowledged writes not kept: $term_not_kept after SIGTERM, $not_kept after the kills"
figure restart.second-daemon "a second daemon on the same run directory: exit 1, one line; the first went on serving"
echo "restart: ok"
