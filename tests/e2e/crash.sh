#!/usr/bin/env bash
# kill -9 under NBD's durability contract, in every cache mode (issue 18, point 3). Per mode: a daemon
# with --state-dir (and --cache MODE), an origin and a snapshot (chunk size drawn from the seed);
# seeded libnbd writers (writers_driver.py: writes, FUA writes, WRITE_ZEROES and FLUSHes, two
# connections per export, eight requests in flight on each) while the daemon is killed with SIGKILL
# at a random moment after each cycle's first acknowledged write and restarted (it restores its
# devices). After each kill `dmsnap cow check` finds the COW clean as the kill left it; after each
# restart the writers read both views whole: every write completed before a completed FLUSH and every
# completed FUA write is there, every sector holds its block's last durable content or a later
# write's (never older, never anything else), the snapshot never an origin write; with directsync
# (each write acknowledged once durable) no acknowledged write is lost either. At the end a clean
# stop and `cow check` once more.
#
#   tests/e2e/crash.sh [--kills N] [--seed N] [--modes "none writeback directsync"]
# N kills in all (default CRASH_KILLS or 102), shared by the modes (CRASH_CACHE_MODES); a daemon without
# --cache runs once, without the option, at its only behaviour (directsync's). --seed N repeats the
# writers' requests, the chunk sizes and the kill pauses (not the kill moments: those are wall time).
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
kills=${CRASH_KILLS:-102}
modes=${CRASH_CACHE_MODES:-none writeback directsync}
seed=${CRASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
while [ $# -gt 0 ]; do
    case "$1" in
        --kills) kills=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --modes) modes=$2; shift 2 ;;
        *) fail "usage: crash.sh [--kills N] [--seed N] [--modes \"MODE...\"]" ;;
    esac
done
SIZE=$((8 << 20))
RANDOM=$seed
echo "crash: seed $seed; reproduce with: CRASH_CACHE_MODES=\"$modes\" tests/e2e/crash.sh --seed $seed --kills $kills"

"$DMSNAP" --version >/dev/null
if "$DMSNAP" daemon --help 2>&1 | grep -qE -- '--cache[= ]'; then
    cache_option=true
else
    cache_option=false
    echo "crash: this daemon has no --cache option: one run without it, at its only behaviour (directsync's: a write acknowledged once durable); modes asked for: $modes"
    modes=directsync
fi
read -ra mode_list <<<"$modes"
per_mode=$(((kills + ${#mode_list[@]} - 1) / ${#mode_list[@]}))

total_kills=0 total_issued=0 total_checked=0 total_blocks=0
# crash_mode MODE INDEX: a fresh origin and snapshot, per_mode kills, the checks; adds to the totals.
crash_mode() {
    local mode=$1 index=$2 dir="$E2E_WORK/$1"
    local run="$dir/run" base="$dir/base.img" cow="$dir/snap.cow"
    local chunks=(8 16 128)
    local chunk=${chunks[RANDOM % 3]} writers_seed=$((seed + index))
    local daemon_args=(--state-dir "$dir/state")
    local i out rc c check_pid not_kept=0 label=$mode
    if $cache_option; then daemon_args+=(--cache "$mode"); else label="$mode (no --cache option)"; fi
    mkdir -p "$dir"
    /usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import nbdraw; nbdraw.write_base_image(sys.argv[2], 1, int(sys.argv[3]))' \
        "$here" "$base" "$SIZE"
    start_daemon "$run" "${daemon_args[@]}"
    "$DMSNAP" origin create vol "$base" --run-dir "$run" >/dev/null
    "$DMSNAP" snapshot create vol snap --cow "$cow" --cow-size $((2 * SIZE)) --chunk-size "$chunk" --run-dir "$run" >/dev/null
    writers_start "$dir" --sock "$run/nbd.sock" --size "$SIZE" --zeroes 0.1 --seed "$writers_seed"
    for i in $(seq 1 "$per_mode"); do
        writers_writing $((i - 1))
        random_pause 0 800
        kill9_daemon
        # `cow check` reads copies of the COW as the kill left it and of the origin, beside the
        # restart (both start a JVM; the restarted daemon writes to the COW at once and locks both).
        cp --sparse=always "$cow" "$dir/killed.cow"
        cp --sparse=always "$base" "$dir/killed.img"
        "$DMSNAP" cow check "$dir/killed.cow" --origin "$dir/killed.img" >"$dir/check.out" 2>&1 &
        check_pid=$!
        on_exit "kill_job $check_pid"
        start_daemon "$run" "${daemon_args[@]}"
        wait "$check_pid" || fail "cow check after kill $i ($label): $(cat "$dir/check.out")"
        writers_resumed "$i" "kill $i ($label)"
        if [ "$mode" = directsync ]; then
            expect_eq "acknowledged writes not kept after kill $i ($label)" 0 "$(writers_field "$i" acked_not_kept)"
        fi
    done
    writers_writing "$per_mode"
    writers_stop
    kill -TERM "$daemon_pid"
    rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=""
    expect_eq "exit status of the daemon's SIGTERM ($label)" 0 "$rc"
    out=$("$DMSNAP" cow check "$cow" --origin "$base" 2>&1) || fail "cow check at the end ($label): $out"
    # Each cycle had an acknowledged write, checked at the next restart (or at the end, flushed).
    [ "$(writers_field done writes_checked)" -ge $((per_mode + 1)) ] || fail "$label: fewer writes checked than cycles"
    for c in $(seq 1 "$per_mode"); do not_kept=$((not_kept + $(writers_field "$c" acked_not_kept))); done
    echo "crash [$label]: $per_mode kill -9 (chunk $chunk sectors, writers' seed $writers_seed): $(writers_summary);" \
        "acknowledged writes not kept after a kill: $not_kept; cow check clean after every kill and at the end"
    figure "crash.kill9.$mode" "$per_mode kill -9 at random moments, chunk $chunk sectors: $(writers_summary); cow check clean after each kill"
    total_kills=$((total_kills + per_mode))
    total_issued=$((total_issued + $(writers_field done issued)))
    total_checked=$((total_checked + $(writers_field done writes_checked)))
    total_blocks=$((total_blocks + $(writers_field done blocks)))
}

index=0
for mode in "${mode_list[@]}"; do
    crash_mode "$mode" "$index"
    index=$((index + 1))
done
summary="$total_kills kill -9 over ${#mode_list[@]} cache mode(s) ($modes$($cache_option || echo ', without --cache')): writes issued $total_issued, block writes checked $total_checked, blocks verified $total_blocks, lost 0; cow check clean after every kill"
echo "crash: $summary"
figure crash.kill9 "$summary"
echo "crash: ok"
