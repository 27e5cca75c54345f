#!/usr/bin/env bash
# dmsnap's NBD exports beside the servers users would pick instead (issue 18, point 7), with one
# client (fio's nbd engine) in one run, rounds interleaved (each row runs every server in turn, the
# order rotated per round), medians:
#   writes into a fresh overlay of a base image: 4 KiB random and 1 MiB sequential first-touch
#     writes, 4 KiB random rewrites of allocated chunks, 4 KiB random first-touch writes each
#     followed by a FLUSH (durable); reads of the overlay: 4 KiB random and 1 MiB sequential;
#   at queue depth 1 and 16, with the base in the page cache and read cold (caches dropped; the
#     rewrites and the write+FLUSH rows run with the base in the page cache only);
#   dmsnap: a long-lived daemon (warmed first), a snapshot per run on a COW made by `truncate`
#     (--preallocation off, the default) with 4 KiB (LVM's default) and 64 KiB chunks, in each
#     cache mode, plus a thick COW (--preallocation full) in the default mode and in none for the
#     first-touch rows (the allocate-ahead target: sparse >= 0.9x thick);
#   peers at their defaults: qemu-nbd on a qcow2 overlay (--cache=writeback, its default;
#     --cache=none; --cache=directsync), nbdkit --filter=cow file, and for reads nbdkit file.
# The raw runs go to a TSV; bench/nbd-vs-peers.py prints the tables and target ratios and draws the
# plot. With --record: bench/nbd-vs-peers.tsv, bench/nbd-vs-peers.svg and the RESULTS.md section.
#   bench/nbd-vs-peers.sh [--record] [--dir DIR] [--size-mib N] [--seconds S] [--rounds R] [--only REGEX]
#     [--servers REGEX]
size_mib=1024; seconds=3; rounds=3; only=.; servers_only=.
bench_extra_usage="[--size-mib N] [--seconds S] [--rounds R] [--only REGEX] [--servers REGEX]"
bench_option() {
    case "$1" in
        --size-mib) size_mib=$2 ;;
        --seconds) seconds=$2 ;;
        --rounds) rounds=$2 ;;
        --only) only=$2 ;; # runs only the rows whose "workload qdN base" matches (a quick look)
        --servers) servers_only=$2 ;; # and in them only the servers whose name matches
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_jar=0 bench_prepare fio jq nbdkit qemu-nbd qemu-img
[ "$(id -u)" -eq 0 ] || { echo "run as root: the page cache is dropped before the cold runs" >&2; exit 1; }
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || {
    echo "python3-matplotlib is needed (apt-get install python3-matplotlib)" >&2
    exit 1
}
DMSNAP="$ROOT/dmsnap"
"$DMSNAP" --version >/dev/null
base="$work/base.img"
echo "filling $base with $size_mib MiB of random data..." >&2
fio --name=fill --filename="$base" --size="${size_mib}M" --rw=write --bs=1M --direct=1 --ioengine=psync \
    --refill_buffers --output-format=terse >/dev/null
sectors=$((size_mib * 2048))
rewrite_mib=$((size_mib / 4))
cow_mib=$((size_mib + size_mib / 4))

pids=()
cleanup() {
    for p in "${pids[@]}"; do bench_stop_server "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT
RUN="$work/run"
bench_start_server daemon "$RUN/control.sock" "$DMSNAP" daemon --run-dir "$RUN"
pids+=("$server_pid")
d() { "$DMSNAP" "$@" --run-dir "$RUN" >/dev/null; }
d origin create vol "$base"
# The daemon's default cache mode, as a user who names none gets it: the report's "default" rows.
d snapshot create vol probe --cow "$work/probe.cow" --cow-size 16M
default_mode=$("$DMSNAP" info probe --json --run-dir "$RUN" | jq -r '.. | .cache? // empty' | head -n 1)
d snapshot remove probe
rm -f "$work/probe.cow"
[ -n "$default_mode" ] || { echo "could not read the daemon's default cache mode" >&2; exit 1; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# fio_args WORKLOAD QD: the fio options of one row (the amount: a time limit, or the region once).
fio_args() {
    local common=(--iodepth="$2" --runtime="$seconds" --randrepeat=0)
    case "$1" in
        write-4k) echo --rw=randwrite --bs=4k --size="${size_mib}M" "${common[@]}" ;;
        write-1m) echo --rw=write --bs=1m --size="${size_mib}M" "${common[@]}" ;;
        rewrite-4k) echo --rw=randwrite --bs=4k --size="${rewrite_mib}M" --time_based --norandommap "${common[@]}" ;;
        write-flush-4k) echo --rw=randwrite --bs=4k --size="${size_mib}M" --fsync=1 "${common[@]}" ;;
        read-4k) echo --rw=randread --bs=4k --size="${size_mib}M" --time_based --norandommap "${common[@]}" ;;
        read-1m) echo --rw=read --bs=1m --size="${size_mib}M" "${common[@]}" ;;
    esac
}

# open_overlay SERVER: a fresh writable view of the base on SERVER; its URI in $uri.
open_overlay() {
    local server=$1
    case "$server" in
        dmsnap-*)
            local mode chunk prealloc=off
            IFS=- read -r _ mode chunk thick <<<"$server"
            [ "${thick:-}" = thick ] && prealloc=full
            rm -f "$work/snap.cow"
            d snapshot create vol snap --cow "$work/snap.cow" --cow-size "${cow_mib}M" --cache "$mode" \
                --chunk-size $((${chunk%k} * 2)) --preallocation "$prealloc"
            uri="nbd+unix:///snap?socket=$RUN/nbd.sock" ;;
        qemu-nbd-*)
            rm -f "$work/overlay.qcow2"
            qemu-img create -q -f qcow2 -b "$base" -F raw "$work/overlay.qcow2" "${size_mib}M"
            bench_start_server qemu "$work/qemu.sock" qemu-nbd -t -k "$work/qemu.sock" \
                --cache="${server#qemu-nbd-}" -f qcow2 "$work/overlay.qcow2"
            uri="nbd+unix:///?socket=$work/qemu.sock" ;;
        nbdkit-cow)
            bench_start_server nbdkit "$work/nbdkit.sock" nbdkit -f -U "$work/nbdkit.sock" --filter=cow file "$base"
            uri="nbd+unix:///?socket=$work/nbdkit.sock" ;;
        nbdkit-file) # reads only: it serves the base itself
            bench_start_server nbdkit "$work/nbdkit.sock" nbdkit -f -U "$work/nbdkit.sock" file "$base"
            uri="nbd+unix:///?socket=$work/nbdkit.sock" ;;
    esac
}
close_overlay() {
    case "$1" in
        dmsnap-*) d snapshot remove snap ;;
        *) bench_stop_server "$server_pid" ;;
    esac
}

# one_run SERVER WORKLOAD QD BASE -> IOPS of that row on a fresh overlay
one_run() {
    local server=$1 workload=$2 qd=$3 where=$4 args
    open_overlay "$server"
    if [ "$workload" = rewrite-4k ]; then # allocates the region first, untimed
        bench_fio "$work/fill.json" "$uri" --rw=write --bs=1m --size="${rewrite_mib}M" --iodepth=4 --end_fsync=1
    fi
    drop_caches
    [ "$where" = cache ] && cat "$base" >/dev/null
    read -ra args <<<"$(fio_args "$workload" "$qd")"
    bench_fio "$work/fio.json" "$uri" "${args[@]}"
    close_overlay "$server"
    local key=write
    [[ $workload == read-* ]] && key=read
    printf '%.0f' "$(jq ".jobs[0].$key.iops" "$work/fio.json")"
}

dmsnap_all=(dmsnap-none-4k dmsnap-none-64k dmsnap-writeback-4k dmsnap-writeback-64k dmsnap-directsync-4k
    dmsnap-directsync-64k)
# thick COWs in the default mode and in none (O_DIRECT, where a sparse file costs most)
thick=(dmsnap-none-4k-thick dmsnap-none-64k-thick)
[ "$default_mode" = none ] || thick+=("dmsnap-$default_mode-4k-thick" "dmsnap-$default_mode-64k-thick")
peers=(qemu-nbd-writeback qemu-nbd-none qemu-nbd-directsync nbdkit-cow)
rows=() # "workload qd base|servers..."
for qd in 1 16; do
    for where in cache cold; do
        for w in write-4k write-1m; do
            rows+=("$w $qd $where|${dmsnap_all[*]} ${thick[*]} ${peers[*]}")
        done
        rows+=("read-4k $qd $where|dmsnap-none-4k dmsnap-writeback-4k ${peers[*]} nbdkit-file")
        rows+=("read-1m $qd $where|dmsnap-none-4k dmsnap-writeback-4k ${peers[*]} nbdkit-file")
    done
    for w in rewrite-4k write-flush-4k; do
        rows+=("$w $qd cache|${dmsnap_all[*]} ${peers[*]}")
    done
done

tsv="$work/runs.tsv"
printf 'round\tworkload\tqd\tbase\tserver\tiops\n' >"$tsv"
echo "warming the daemon..." >&2
for w in write-4k write-1m rewrite-4k write-flush-4k read-4k read-1m; do
    one_run dmsnap-none-4k "$w" 16 cache >/dev/null
    one_run dmsnap-writeback-64k "$w" 1 cache >/dev/null
done
started=$(date +%s)
for round in $(seq 1 "$rounds"); do
    for row in "${rows[@]}"; do
        spec=${row%%|*}
        [[ $spec =~ $only ]] || continue
        read -ra servers <<<"${row#*|}"
        for i in "${!servers[@]}"; do [[ ${servers[$i]} =~ $servers_only ]] || unset "servers[$i]"; done
        servers=("${servers[@]}")
        read -r w qd where <<<"$spec"
        n=${#servers[@]}
        for i in $(seq 0 $((n - 1))); do
            s=${servers[$(((i + round - 1) % n))]}
            echo "  round $round: $spec $s" >&2
            iops=$(one_run "$s" "$w" "$qd" "$where") && [ -n "$iops" ] || { echo "$s failed on $spec" >&2; exit 1; }
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$qd" "$where" "$s" "$iops" >>"$tsv"
        done
    done
done
echo "measured in $(($(date +%s) - started)) s" >&2

kernel=$(uname -r); jdk=$("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1)
fs=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
machine="Machine: $(nproc) cores, $kernel; JDK: $jdk; $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), $(qemu-nbd --version | head -n 1); files on $fs; $(date +%F)."
command="bench/nbd-vs-peers.sh --size-mib $size_mib --seconds $seconds --rounds $rounds"
svg="$work/nbd-vs-peers.svg"
body=$(/usr/bin/python3 "$ROOT/bench/nbd-vs-peers.py" "$tsv" --svg "$svg" --size-mib "$size_mib" --seconds "$seconds" \
    --command "$command" --machine "$machine" --default-mode "$default_mode")
echo "$body"
if [ "$record" -eq 1 ]; then
    cp "$tsv" "$ROOT/bench/nbd-vs-peers.tsv"
    cp "$svg" "$ROOT/bench/nbd-vs-peers.svg"
fi
bench_record "NBD vs nbdkit and qemu-nbd" "$body"
