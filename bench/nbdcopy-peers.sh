#!/usr/bin/env bash
# nbdcopy into and out of a snapshot, dmsnap against its peers (issue 18, point 6), in one run:
# a base of random data; for each server a fresh overlay over it: dmsnap's snapshot (`P`, 64 KiB
# chunks, a COW made with truncate, the daemon's default cache mode writeback), qemu-nbd on a qcow2
# overlay at its default (writeback) and with --cache=none (each `-e 4`, so nbdcopy may open its
# 4 connections), and nbdkit --filter=cow. "in": nbdcopy of another file of random data into the
# overlay (every chunk first-touch; nbdcopy flushes at the end, so the data is durable where the
# server's flush makes it so); "out": nbdcopy of the overlay (half written, half the base) to
# null:. Caches dropped before each copy; R rounds in turned order; medians.
#   bench/nbdcopy-peers.sh [--record] [--dir DIR] [--size-mib N] [--rounds R]
size_mib=1024
rounds=3
bench_extra_usage="[--size-mib N] [--rounds R]"
bench_option() {
    case "$1" in
        --size-mib) size_mib=$2 ;;
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_tools nbdcopy nbdkit qemu-nbd qemu-img fio
bench_workdir
DMSNAP="$ROOT/dmsnap"
"$DMSNAP" --version >/dev/null
pids=()
cleanup() {
    for p in "${pids[@]}"; do bench_stop_server "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
fill() { fio --name=fill --filename="$1" --size="${size_mib}M" --rw=write --bs=1M --direct=1 --ioengine=psync \
    --refill_buffers --output-format=terse >/dev/null; }
base="$work/base.img"
fill "$base"
# What is copied in: the first half of the overlay gets new data.
half=$((size_mib / 2))
size_mib=$half fill "$work/in.img"
sync

run="$work/run"
bench_start_server dmsnap "$run/control.sock" "$DMSNAP" daemon --run-dir "$run"
pids+=("$server_pid")
d() { "$DMSNAP" "$@" --run-dir "$run" >/dev/null; }
d origin create vol "$base"
snap=0

# overlay SERVER: a fresh overlay over the base, served; its URI in $uri, a server pid in $peer.
overlay() {
    peer=""
    case $1 in
        dmsnap)
            snap=$((snap + 1))
            [ "$snap" -eq 1 ] || d snapshot remove "s$((snap - 1))"
            rm -f "$work/s.cow"
            truncate -s "$((size_mib * 5 / 4))M" "$work/s.cow"
            d snapshot create vol "s$snap" --cow "$work/s.cow" --chunk-size 128
            uri="nbd+unix:///s$snap?socket=$run/nbd.sock" ;;
        qemu-nbd | qemu-nbd-none)
            rm -f "$work/overlay.qcow2"
            qemu-img create -q -f qcow2 -F raw -b "$base" "$work/overlay.qcow2"
            local cache=()
            [ "$1" = qemu-nbd-none ] && cache=(--cache=none --aio=native)
            bench_start_server "$1" "$work/$1.sock" qemu-nbd -t -e 4 -k "$work/$1.sock" "${cache[@]}" -f qcow2 \
                "$work/overlay.qcow2"
            peer=$server_pid
            uri="nbd+unix:///?socket=$work/$1.sock" ;;
        nbdkit-cow)
            bench_start_server nbdkit-cow "$work/nbdkit-cow.sock" nbdkit -f -U "$work/nbdkit-cow.sock" --filter=cow \
                file "$base"
            peer=$server_pid
            uri="nbd+unix:///?socket=$work/nbdkit-cow.sock" ;;
    esac
}

servers=(dmsnap qemu-nbd qemu-nbd-none nbdkit-cow)
declare -A in_ms=() out_ms=()
for round in $(seq 1 "$rounds"); do
    order=("${servers[@]}")
    for _ in $(seq 2 "$round"); do order=("${order[@]:1}" "${order[0]}"); done
    for s in "${order[@]}"; do
        overlay "$s"
        sync
        echo 3 >/proc/sys/vm/drop_caches
        t=$(now)
        nbdcopy "$work/in.img" "$uri"
        in_ms[$s]+="$((($(now) - t) / 1000000)) "
        sync
        echo 3 >/proc/sys/vm/drop_caches
        t=$(now)
        nbdcopy "$uri" null:
        out_ms[$s]+="$((($(now) - t) / 1000000)) "
        [ -z "$peer" ] || bench_stop_server "$peer"
        echo "  round $round: $s done" >&2
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
# shellcheck disable=SC2086
dm_in=$(median ${in_ms[dmsnap]})
# shellcheck disable=SC2086
dm_out=$(median ${out_ms[dmsnap]})
table="| server | nbdcopy in: ${half} MiB (ms) | dmsnap's speed / this one's | nbdcopy out: ${size_mib} MiB (ms) | dmsnap's speed / this one's |
|---|---|---|---|---|"
for s in "${servers[@]}"; do
    # shellcheck disable=SC2086
    i=$(median ${in_ms[$s]})
    # shellcheck disable=SC2086
    o=$(median ${out_ms[$s]})
    table+="
| $s | $i <small>(${in_ms[$s]% })</small> | $(ratio "$dm_in" "$i")× | $o <small>(${out_ms[$s]% })</small> | $(ratio "$dm_out" "$o")× |"
done
body="Machine: $(nproc) cores, $(uname -r); nbdcopy $(nbdcopy --version | head -n 1 | awk '{print $2}'), nbdkit $(nbdkit --version | awk '{print $2}'), $(qemu-nbd --version | head -n 1); $(date +%F).
Command: \`bench/nbdcopy-peers.sh --size-mib $size_mib --rounds $rounds\`: a ${size_mib} MiB base of random data; per copy a fresh overlay: dmsnap snapshot \`P\` with 64 KiB chunks on a COW made with truncate (cache mode writeback, the daemon's default), qemu-nbd \`-t -e 4\` on a qcow2 overlay at its default (writeback) and with \`--cache=none --aio=native\`, nbdkit \`--filter=cow\` on the file; \`nbdcopy\` at its defaults (4 connections where the server allows several, 4 requests in flight on each). In: ${half} MiB of new random data into the overlay's first half (first-touch; nbdcopy ends with a flush). Out: the whole overlay to \`null:\`. Caches dropped before each copy; medians of $rounds rounds in turned order (each round's values in small type).

$table"
echo "$body"
bench_record "nbdcopy into and out of a snapshot vs qemu-nbd and nbdkit (issue 18)" "$body"
