#!/usr/bin/env bash
# The NBD data path next to its peers, with the same client (fio's nbd engine) in one run:
#   reads of the raw base image: dmsnap (a linear device over it) vs nbdkit file (default and
#     cache=none), page cache dropped before every run;
#   first-touch writes: a dmsnap snapshot (P 8, fresh COW each run) vs qemu-nbd on a fresh qcow2
#     overlay (cache=none, aio=native; and cache=writethrough, as durable as dmsnap) vs nbdkit
#     --filter=cow (fresh overlay each run);
# each at 4 KiB random and 1 MiB sequential, iodepth 1 and 16. Rounds alternate the servers.
# Prints a Markdown table; with --record it goes into bench/RESULTS.md ("NBD vs nbdkit and qemu-nbd").
#   bench/nbd-vs-peers.sh [--record] [--dir DIR] [--size-mib N] [--seconds S] [--rounds R]
size_mib=1024; seconds=8; rounds=2
bench_extra_usage="[--size-mib N] [--seconds S] [--rounds R]"
bench_option() {
    case "$1" in
        --size-mib) size_mib=$2 ;;
        --seconds) seconds=$2 ;;
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_prepare fio jq nbdkit qemu-nbd qemu-img
[ "$(id -u)" -eq 0 ] || { echo "run as root: the page cache is dropped before every read run" >&2; exit 1; }
DMSNAP="$ROOT/dmsnap"
"$DMSNAP" --version >/dev/null
base="$work/base.img"
echo "filling $base with $size_mib MiB of random data..." >&2
fio --name=fill --filename="$base" --size="${size_mib}M" --rw=write --bs=1M --direct=1 --ioengine=psync \
    --refill_buffers --output-format=terse >/dev/null
sectors=$((size_mib * 2048))

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
RUN="$work/run"
"$DMSNAP" daemon --run-dir "$RUN" 2>"$work/daemon.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$RUN/control.sock" ] && break; sleep 0.1; done
d() { "$DMSNAP" "$@" --run-dir "$RUN" >/dev/null; }
d create raw --table "0 $sectors linear $base 0"
d origin create vol "$base"

# start_server NAME COMMAND...: runs a peer server on $work/NAME.sock and waits for it.
start_server() {
    local name=$1; shift
    rm -f "$work/$name.sock"
    "$@" >"$work/$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do [ -S "$work/$name.sock" ] && return 0; sleep 0.05; done
    cat "$work/$name.log" >&2; exit 1
}
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# run_fio URI RW BS DEPTH -> IOPS; reads are timed, writes write a fixed amount once (first touch).
run_fio() {
    local uri=$1 rw=$2 bs=$3 depth=$4 key amount json
    if [[ $rw == *read* ]]; then
        key=read; amount=(--time_based --runtime="$seconds")
    else
        key=write
        if [ "$bs" = 4k ]; then amount=(--io_size=64M); else amount=(--io_size=$((size_mib / 2))M); fi
    fi
    json=$(fio --name=nbd --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$depth" \
        --size="${size_mib}M" "${amount[@]}" --randrepeat=0 --output-format=json --output="$work/fio.json" \
        >/dev/null 2>"$work/fio.err" && cat "$work/fio.json") || { cat "$work/fio.err" >&2; exit 1; }
    [ "$(echo "$json" | jq '.jobs[0].error')" = 0 ] || { echo "fio error on $uri" >&2; exit 1; }
    printf '%.0f' "$(echo "$json" | jq ".jobs[0].$key.iops")"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# one_read SERVER RW BS DEPTH -> IOPS
one_read() {
    local server=$1 iops
    drop_caches
    case "$server" in
        dmsnap) iops=$(run_fio "nbd+unix:///raw?socket=$RUN/nbd.sock" "$2" "$3" "$4") ;;
        nbdkit-file)
            start_server nbdkit-file nbdkit -f -U "$work/nbdkit-file.sock" file "$base"
            iops=$(run_fio "nbd+unix:///?socket=$work/nbdkit-file.sock" "$2" "$3" "$4"); stop_server ;;
        nbdkit-file-nocache)
            start_server nbdkit-nc nbdkit -f -U "$work/nbdkit-nc.sock" file "$base" cache=none
            iops=$(run_fio "nbd+unix:///?socket=$work/nbdkit-nc.sock" "$2" "$3" "$4"); stop_server ;;
    esac
    echo "$iops"
}

# one_write SERVER RW BS DEPTH -> IOPS, each on a fresh overlay
one_write() {
    local server=$1 iops
    drop_caches
    case "$server" in
        dmsnap)
            rm -f "$work/snap.cow"
            d snapshot create vol snap --cow "$work/snap.cow" --cow-size "$((size_mib + size_mib / 8))M"
            iops=$(run_fio "nbd+unix:///snap?socket=$RUN/nbd.sock" "$2" "$3" "$4")
            d snapshot remove snap ;;
        qemu-nbd)
            rm -f "$work/overlay.qcow2"
            qemu-img create -q -f qcow2 -b "$base" -F raw "$work/overlay.qcow2"
            start_server qemu qemu-nbd -t -k "$work/qemu.sock" --cache=none --aio=native -f qcow2 "$work/overlay.qcow2"
            iops=$(run_fio "nbd+unix:///?socket=$work/qemu.sock" "$2" "$3" "$4"); stop_server ;;
        qemu-nbd-wt) # as durable as dmsnap: each write is flushed before it completes
            rm -f "$work/overlay.qcow2"
            qemu-img create -q -f qcow2 -b "$base" -F raw "$work/overlay.qcow2"
            start_server qemu-wt qemu-nbd -t -k "$work/qemu-wt.sock" --cache=writethrough -f qcow2 "$work/overlay.qcow2"
            iops=$(run_fio "nbd+unix:///?socket=$work/qemu-wt.sock" "$2" "$3" "$4"); stop_server ;;
        nbdkit-cow)
            start_server nbdkit-cow nbdkit -f -U "$work/nbdkit-cow.sock" --filter=cow file "$base"
            iops=$(run_fio "nbd+unix:///?socket=$work/nbdkit-cow.sock" "$2" "$3" "$4"); stop_server ;;
    esac
    echo "$iops"
}

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }' <<<"$1"; }
mibs() { awk -v i="$1" -v b="$2" 'BEGIN { printf "%.1f", i * (b == "4k" ? 4096 : 1048576) / 1048576 }'; }

table="| workload | server | IOPS per round | mean IOPS | MiB/s | dmsnap / this |
|---|---|---|---|---|---|"
run_group() { # kind servers... ; reads "read" patterns, writes "write" patterns
    local kind=$1; shift
    local servers=("$@") rw bs depth
    for spec in "rand${kind} 4k 1" "rand${kind} 4k 16" "${kind} 1m 1" "${kind} 1m 16"; do
        read -r rw bs depth <<<"$spec"
        declare -A runs=()
        for round in $(seq 1 "$rounds"); do
            for s in "${servers[@]}"; do
                echo "  $rw $bs qd$depth $s round $round" >&2
                iops=$("one_$kind" "$s" "$rw" "$bs" "$depth") && [ -n "$iops" ] \
                    || { echo "$s failed on $rw $bs qd$depth" >&2; exit 1; }
                runs[$s]="${runs[$s]:-} $iops"
            done
        done
        local own
        own=$(mean "${runs[dmsnap]}")
        for s in "${servers[@]}"; do
            local m
            m=$(mean "${runs[$s]}")
            table="$table
| $rw $bs qd$depth | $s |${runs[$s]} | $m | $(mibs "$m" "$bs") | $(awk -v a="$own" -v b="$m" 'BEGIN { printf "%.2f", a / b }') |"
        done
        unset runs
    done
}
run_group read dmsnap nbdkit-file nbdkit-file-nocache
run_group write dmsnap qemu-nbd qemu-nbd-wt nbdkit-cow

kernel=$(uname -r); jdk=$("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1)
fs=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
body="Machine: $(nproc) cores, $kernel; JDK: $jdk; $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), $(qemu-nbd --version | head -n 1); files on $fs; $(date +%F).
Command: \`bench/nbd-vs-peers.sh --size-mib $size_mib --seconds $seconds --rounds $rounds\` (fio --ioengine=nbd over each server's Unix socket; reads: ${seconds} s time-based, page cache dropped before each run; writes: 64 MiB of 4 KiB random or $((size_mib / 2)) MiB of 1 MiB sequential writes, each block written once, into a fresh overlay each run: dmsnap snapshot \`P 8\` on a new COW, qemu-nbd \`-t --cache=none --aio=native\` on a new qcow2 over the base (qemu-nbd-wt: \`--cache=writethrough\`, every write flushed before its reply, as dmsnap's first-touch writes), nbdkit \`--filter=cow\`).

$table

What the write rows compare: dmsnap completes a first-touch write only when its exception is committed
(the data, then the area entries, each flushed; spec 5.1 and checklist 30, as the kernel's persistent store),
so every such reply costs two device flushes (a 1 MiB write fills about one area: one round of commits for
256 chunks). qemu-nbd with cache=none and nbdkit's cow filter (a temporary file) flush nothing until the
client sends FLUSH; qemu-nbd-wt is the peer at the same durability. The reads: dmsnap reads with O_DIRECT into request buffers that live in huge pages from
64 KiB on (IoMemory; a 1 MiB transfer is one segment, not 256 scattered pages); nbdkit file reads through the
page cache, which the 1 MiB sequential reads' readahead and the 4 KiB reads' repeats hit during a run (nocache:
the pages are dropped after each request, readahead still works)."
echo "$body"
bench_record "NBD vs nbdkit and qemu-nbd" "$body"
