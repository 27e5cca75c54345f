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
# A thick COW (--preallocation full): every block written, the snapshot works the same.
out=$(d snapshot create vol thick --cow "$work/thick.cow" --cow-size 4M --preallocation full)
expect_contains "thick COW created" "created $work/thick.cow to 4194304 bytes (preallocation full)" "$out"
expect_eq "thick COW allocated" 4194304 "$(($(stat -c %b "$work/thick.cow") * 512))"
expect_eq "thick snapshot status" "0 16384 snapshot 16/8192 16" "$(d status thick)"
d snapshot remove thick >/dev/null
set +e
err=$(d snapshot create vol bad --cow "$work/bad.cow" --cow-size 4M --preallocation thick 2>&1); rc=$?
set -e
expect_contains "unknown preallocation" "--preallocation thick: expected off, falloc or full" "$err"
[ ! -e "$work/bad.cow" ] || fail "a refused --preallocation created $work/bad.cow"
# No space for a thick COW: a clear error, and no file left behind (nor an extended one grown).
# Everything is read before the small file system goes, the checks come after.
if [ "$(id -u)" -eq 0 ]; then
    mkdir "$work/small"
    mount -t tmpfs -o size=2M tmpfs "$work/small"
    set +e
    err_new=$(d snapshot create vol nospace --cow "$work/small/n.cow" --cow-size 4M --preallocation full 2>&1); rc_new=$?
    left=$([ -e "$work/small/n.cow" ] && echo yes || echo no)
    head -c 1M /dev/zero >"$work/small/e.cow"
    err_ext=$(d snapshot create vol nospace --cow "$work/small/e.cow" --cow-size 4M --preallocation falloc 2>&1); rc_ext=$?
    size=$(stat -c %s "$work/small/e.cow")
    set -e
    umount "$work/small"
    [ "$rc_new" -ne 0 ] || fail "a thick COW larger than its file system was created"
    expect_contains "no space" "No space left on device" "$err_new"
    expect_eq "the failed thick COW left behind" no "$left"
    [ "$rc_ext" -ne 0 ] || fail "a falloc COW larger than its file system was created"
    expect_eq "a failed extension is cut back" 1048576 "$size"
    echo "  no space: refused ($err_ext), nothing left behind"
fi
set +e
err=$(d snapshot create nosuch s2 --cow "$work/snap.cow" 2>&1); rc=$?
set -e
expect_eq "exit status for a missing origin" 3 "$rc"
echo "lvm commands: ok"
