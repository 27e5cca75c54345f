#!/usr/bin/env bash
# Load and soak (issue 16, point 4): one daemon, 20 devices (5 origins with 2-3 snapshots each, 3
# linear devices), 500 NBD connections at once for a fixed time (soak_driver.py): normal clients
# verifying every read against a model, slow readers that never take their replies, clients that
# hang up half-way through a request, snapshot create/refresh/remove churn through the CLI and one
# merge. Checks: no error and no request waiting longer than 20 s for a normal client; RSS, threads
# and descriptors (sampled every second into samples.csv) do not grow after warm-up and come back
# when the clients leave; then past the connection limit (1024) the extra connections are closed at
# once while the daemon stays healthy; SIGTERM stops it cleanly and every COW checks clean.
#
#   bash tests/e2e/soak.sh                 # 60 s of load (SOAK_SECONDS=N to change)
#   bash tests/e2e/soak.sh --soak 2        # two hours
# SOAK_DRIVER_ARGS adds options of soak_driver.py (e.g. "--slow 4 --think-ms 50").
# SOAK_KEEP=DIR keeps samples.csv and the daemon log in DIR (they are kept in /tmp on a failure).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
work=$E2E_WORK
RUN="$work/run"
seconds=${SOAK_SECONDS:-60}
while [ $# -gt 0 ]; do
    case "$1" in
        --soak) seconds=$(/usr/bin/python3 -c 'import sys; print(int(float(sys.argv[1]) * 3600))' "$2"); shift 2 ;;
        *) fail "usage: soak.sh [--soak HOURS]" ;;
    esac
done
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
keep() {
    local dir=${SOAK_KEEP:-$(mktemp -d /tmp/dmsnap-soak.XXXXXX)}
    mkdir -p "$dir"
    cp "$work/samples.csv" "$work/daemon.log" "$dir/" 2>/dev/null || true
    echo "soak: samples.csv and daemon.log kept in $dir" >&2
}
"$DMSNAP" --version >/dev/null

# The heap is touched at start (-XX:+AlwaysPreTouch): growth of RSS after warm-up is then memory the
# daemon keeps, not the JVM's first touch of heap it had committed from the start (without it RSS
# crept up another 40-60 MiB for 30-50 s after warm-up here, then stayed flat).
DMSNAP_JAVA_OPTS="${DMSNAP_JAVA_OPTS:-} -XX:+AlwaysPreTouch" start_daemon "$RUN"
expect_eq "the daemon's pid is the JVM's" java "$(cat "/proc/$daemon_pid/comm")"
driver=(/usr/bin/python3 "$here/soak_driver.py" --sock "$RUN/nbd.sock")
rc=0
"${driver[@]}" --run-dir "$RUN" --dmsnap "$DMSNAP" --work "$work" --pid "$daemon_pid" \
    --csv "$work/samples.csv" --duration "$seconds" ${SOAK_DRIVER_ARGS:-} >"$work/soak.out" || rc=$?
cat "$work/soak.out"
if [ $rc -ne 0 ]; then
    keep
    echo "soak: the daemon's watchdog closed $(grep -c "closed: a message or reply took longer" "$work/daemon.log") connection(s)" >&2
    fail "the load run found problems (above)"
fi
[ -n "${SOAK_KEEP:-}" ] && keep

# Past the connection limit: 1100 at once, 1024 served, 76 closed at once; then the daemon serves again.
echo "  ${SECONDS} s: the load run is over"
"${driver[@]}" --limit-check --limit 1024 --extra 76 || { keep; fail "connection limit"; }
expect_contains "devices listed after the load" "mvol-s1" "$(d ls)"
expect_contains "mvol is an origin again after its merge (mvol-s1 remains)" "snapshot-origin" "$(d table mvol)"

# SIGTERM: a clean stop, then every COW left (the loaded snapshots' and the merged one's) checks clean.
kill -TERM "$daemon_pid"
stop_rc=0
wait "$daemon_pid" || stop_rc=$?
daemon_pid=""
expect_eq "daemon exit status after SIGTERM" 0 "$stop_rc"
expect_eq "last log line" "stopped" "$(tail -n 1 "$work/daemon.log" | sed 's/.* - //')"
checked=0
for cow in "$work"/*.cow; do
    origin=$(basename "$cow" .cow); origin=${origin%-s[0-9]}
    out=$("$DMSNAP" cow check "$cow" --origin "$work/$origin.img" 2>&1) || fail "cow check $cow: $out"
    checked=$((checked + 1))
done
echo "  after SIGTERM: exit 0, 'stopped'; cow check clean on $checked COW files"
# The figures for RELIABILITY.md, from the driver's summary.
row() { awk -v k="  $1 " 'index($0, k) == 1 { print $(NF-2) " MiB, " $(NF-1) " threads, " $NF " fds"; exit }' "$work/soak.out"; }
figure soak.load "$(grep -m1 '^soak: .* of load' "$work/soak.out" | sed 's/^soak: //')"
figure soak.normal-clients "$(grep -m1 'normal clients:' "$work/soak.out" | sed 's/^ *normal clients: //')"
figure soak.misbehaving-clients "$(grep -m1 'slow readers:' "$work/soak.out" | sed 's/^ *//')"
figure soak.churn "$(grep -m1 'churn:' "$work/soak.out" | sed 's/^ *churn: //'); merge: $(grep -m1 'merge of' "$work/soak.out" | sed 's/^ *merge of //; s/; mvol:.*//')"
figure soak.daemon-resources "RSS, threads, fds: idle $(row idle); warm-up end $(row "warm-up end"); 2nd half max $(row "2nd half max"); after the clients left $(row after)"
figure soak.connection-limit "1100 connections at once: 1024 served, 76 closed at once; served again after; SIGTERM exit 0, cow check clean on $checked COWs"
echo "soak: ok (${SECONDS} s)"
