#!/usr/bin/env bash
# The README's first command: `./dmsnap quickstart` runs the guided first run and cleans up;
# with --serve the snapshot it made is reachable by real NBD clients at the URIs it prints
# (nbdinfo, nbdcopy), until SIGTERM (Ctrl-C) stops it with exit status 0.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
"$DMSNAP" --version >/dev/null

started=$(date +%s%N)
out=$(cd "$work" && "$DMSNAP" quickstart)
ms=$(( ($(date +%s%N) - started) / 1000000 ))
expect_contains "snapshot keeps the old data" 'snap reads:   "dmsnap quickstart: original data"   <- the snapshot keeps the old data' "$out"
expect_contains "NBD URI" "snap    nbd+unix:///snap?socket=$work/dmsnap-quickstart/run/nbd.sock" "$out"
expect_contains "cleanup" "cleaned up $work/dmsnap-quickstart" "$out"
[ ! -e "$work/dmsnap-quickstart" ] || fail "quickstart left its folder behind"
echo "  quickstart ran and cleaned up in $ms ms"

"$DMSNAP" quickstart "$work/qs" --serve >"$work/serve.txt" 2>"$work/serve.log" &
qs=$!
on_exit "kill_job $qs"
for _ in $(seq 1 1200); do grep -q "serving until Ctrl-C" "$work/serve.txt" 2>/dev/null && break; sleep 0.1; done
grep -q "serving until Ctrl-C" "$work/serve.txt" || { cat "$work/serve.txt" "$work/serve.log"; fail "quickstart --serve did not come up"; }
uri=$(sed -n 's/^  snap    \(nbd+unix:.*\)$/\1/p' "$work/serve.txt")
expect_eq "snapshot export size" 67108864 "$(nbdinfo --size "$uri")"
expect_eq "snapshot sector 0 over NBD" "dmsnap quickstart: original data" "$(nbdcopy "$uri" - | head -c 32)"
origin_uri=$(sed -n 's/^  origin  \(nbd+unix:.*\)$/\1/p' "$work/serve.txt")
expect_eq "origin sector 0 over NBD" "dmsnap quickstart: written through the origin after the snapshot" \
    "$(nbdcopy "$origin_uri" - | head -c 80 | tr -d '\0')"
expect_contains "CLI against the served daemon" "snap: 0 131072 snapshot" "$("$DMSNAP" status --run-dir "$work/qs/run")"
kill -TERM $qs   # a background job of a script ignores SIGINT; Ctrl-C in a terminal is SIGINT
wait $qs || fail "quickstart --serve exited with $? on SIGTERM"
[ -d "$work/qs" ] || fail "quickstart --serve removed its folder"
echo "  quickstart --serve: nbdinfo and nbdcopy read origin and snapshot at the printed URIs; SIGTERM -> exit 0"
echo "quickstart: ok"
