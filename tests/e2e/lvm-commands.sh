#!/usr/bin/env bash
# The LVM-style commands through the real daemon: origin create, snapshot create (COW file
# created, origin suspended around it), snapshot refresh (handover), snapshot remove.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
"$DMSNAP" --version >/dev/null
start_daemon "$RUN"

truncate -s 8M "$work/base.img"
out=$(d origin create vol "$work/base.img")
expect_contains "origin create" "created origin vol over $work/base.img (16384 sectors)" "$out"
out=$(d snapshot create vol vol-snap --cow "$work/snap.cow" --cow-size 4M)
echo "$out" | sed 's/^/  /'
expect_contains "COW created" "created $work/snap.cow to 4194304 bytes" "$out"
expect_contains "origin suspended" "suspended origin vol" "$out"
expect_contains "origin resumed" "resumed origin vol" "$out"
expect_eq "snapshot status" "0 16384 snapshot 16/8192 16" "$(d status vol-snap)"
out=$(d snapshot refresh vol-snap)
expect_contains "refresh" "resumed vol-snap (exception store handed over)" "$out"
expect_eq "status after refresh" "0 16384 snapshot 16/8192 16" "$(d status vol-snap)"
out=$(d snapshot remove vol-snap)
expect_contains "remove" "removed snapshot vol-snap" "$out"
expect_eq "ls after remove" "$(printf 'vol\t(253:0)')" "$(d ls)"
set +e
err=$(d snapshot create nosuch s2 --cow "$work/snap.cow" 2>&1); rc=$?
set -e
expect_eq "exit status for a missing origin" 3 "$rc"
echo "lvm commands: ok"
