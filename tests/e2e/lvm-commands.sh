#!/usr/bin/env bash
# The LVM-style commands through the real daemon: origin create, snapshot create (COW file
# created, origin suspended around it), snapshot refresh (handover; refused when the COW path
# names another file now), snapshot remove, and a COW on a file system that fills up (as root).
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
# The COW path swapped to a new file: a reload would read that afresh instead of taking the live
# store over. The refresh says so, clears the reload and leaves the snapshot as it was.
mv "$work/snap.cow" "$work/snap.cow.old"
truncate -s 4M "$work/snap.cow"
set +e
err=$(d snapshot refresh vol-snap 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status of a refresh that hands nothing over" 1 "$rc"
expect_contains "refresh of a replaced COW" "vol-snap: the reloaded table did not take over the live exception store" "$err"
expect_eq "status after the refused refresh" "0 16384 snapshot 16/8192 16" "$(d status vol-snap)"
expect_eq "no inactive table left" "" "$(d table --inactive vol-snap)"
rm "$work/snap.cow"
mv "$work/snap.cow.old" "$work/snap.cow"
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
    on_exit "umount -l '$work/small'"
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
    # A sparse COW on a file system that fills up: the snapshot is invalidated and the one log
    # line says why (the COW, ENOSPC).
    mount -t tmpfs -o size=1M tmpfs "$work/small"
    d snapshot create vol full --cow "$work/small/full.cow" --cow-size 4M >/dev/null
    qemu-io -f raw -c 'write -P 0xce 0 2M' "nbd+unix:///vol?socket=$RUN/nbd.sock" >/dev/null
    status=$(d status full)
    d snapshot remove full >/dev/null
    umount "$work/small"
    expect_eq "a COW on a full file system" "0 16384 snapshot Invalid" "$status"
    expect_contains "the invalidation names the COW and ENOSPC" \
        "full: Invalidating snapshot: Error reading/writing. COW $work/small/full.cow: pwrite(path=$work/small/full.cow," \
        "$(cat "$work/daemon.log")"
    expect_contains "... and the errno text" "failed: ENOSPC (No space left on device)" "$(grep 'full: Invalidating' "$work/daemon.log")"
fi
set +e
err=$(d snapshot create nosuch s2 --cow "$work/snap.cow" 2>&1); rc=$?
set -e
expect_eq "exit status for a missing origin" 3 "$rc"
echo "lvm commands: ok"
