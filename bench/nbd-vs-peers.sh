#!/usr/bin/env bash
# The NBD data path next to its peers, with the same client (fio's nbd engine) in one run:
#   reads of the raw base image: dmsnap (a linear device over it, O_DIRECT) vs nbdkit file as it
#     comes (page cache and readahead), with cache=none (pages dropped after each request) and with
#     cache=none fadvise=random (no readahead either: the same device work as dmsnap's); page cache
#     dropped before every run; sequential reads read the base once, random ones run time-based;
#   first-touch writes into the first WRITE MiB, a fresh overlay each run: dmsnap snapshots P 8 on
#     a thick COW (--preallocation full, as an LV), on a sparse one, and N 8 (transient, the peer of
#     nbdkit's throwaway cow overlay); qemu-nbd on a qcow2 overlay (cache=none, aio=native; sparse,
#     and preallocation=full; and cache=writethrough, as durable as dmsnap's P) and nbdkit --filter=cow;
# each at 4 KiB random and 1 MiB sequential, iodepth 1 and 16. Rounds alternate the servers.
# Prints a Markdown table; with --record it goes into bench/RESULTS.md ("NBD vs nbdkit and qemu-nbd").
#   bench/nbd-vs-peers.sh [--record] [--dir DIR] [--size-mib N] [--write-mib N] [--seconds S] [--rounds R]
size_mib=4096; write_mib=1024; seconds=8; rounds=2
bench_extra_usage="[--size-mib N] [--write-mib N] [--seconds S] [--rounds R]"
bench_option() {
    case "$1" in
        --size-mib) size_mib=$2 ;;
        --write-mib) write_mib=$2 ;;
        --seconds) seconds=$2 ;;
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
[ "$write_mib" -le "$size_mib" ] || { echo "--write-mib must not exceed --size-mib" >&2; exit 2; }
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
bench_start_server daemon "$RUN/control.sock" "$DMSNAP" daemon --run-dir "$RUN"
pids+=("$server_pid")
d() { "$DMSNAP" "$@" --run-dir "$RUN" >/dev/null; }
d create raw --table "0 $sectors linear $base 0"
d origin create vol "$base"

# start_server NAME COMMAND...: runs a peer server on $work/NAME.sock and waits for it.
start_server() {
    local name=$1; shift
    bench_start_server "$name" "$work/$name.sock" "$@"
}
stop_server() { bench_stop_server "$server_pid"; }

# run_fio URI RW BS DEPTH -> IOPS. Random reads are timed; sequential reads read the base once
# (time-based, they would come round again to what a page cache still holds); writes write a fixed
# amount once into the first $write_mib MiB (first touch).
run_fio() {
    local uri=$1 rw=$2 bs=$3 depth=$4 key region amount
    if [[ $rw == randread ]]; then
        key=read; region=$size_mib; amount=(--time_based --runtime="$seconds")
    elif [[ $rw == read ]]; then
        key=read; region=$size_mib; amount=()
    else
        key=write; region=$write_mib
        if [ "$bs" = 4k ]; then amount=(--io_size=64M); else amount=(--io_size=$((write_mib / 2))M); fi
    fi
    bench_fio "$work/fio.json" "$uri" --rw="$rw" --bs="$bs" --iodepth="$depth" --size="${region}M" \
        "${amount[@]}" --randrepeat=0
    printf '%.0f' "$(jq ".jobs[0].$key.iops" "$work/fio.json")"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# nbdkit_file NAME PARAMS... -> IOPS of the current read spec ($rw $bs $depth) through nbdkit file
nbdkit_file() {
    local name=$1; shift
    start_server "$name" nbdkit -f -U "$work/$name.sock" file "$base" "$@"
    iops=$(run_fio "nbd+unix:///?socket=$work/$name.sock" "$rw" "$bs" "$depth"); stop_server
}

# one_read SERVER RW BS DEPTH -> IOPS
one_read() {
    local server=$1 rw=$2 bs=$3 depth=$4 iops
    drop_caches
    case "$server" in
        dmsnap) iops=$(run_fio "nbd+unix:///raw?socket=$RUN/nbd.sock" "$rw" "$bs" "$depth") ;;
        nbdkit-file) nbdkit_file nbdkit-file ;;
        nbdkit-file-nocache) nbdkit_file nbdkit-nc cache=none ;;
        nbdkit-file-nocache-random) nbdkit_file nbdkit-ncr cache=none fadvise=random ;;
    esac
    echo "$iops"
}

cow_mib=$((write_mib + write_mib / 8))
# dmsnap_write STORE PREALLOCATION -> IOPS of the current write spec into a fresh snapshot
dmsnap_write() {
    rm -f "$work/snap.cow"
    d snapshot create vol snap --cow "$work/snap.cow" --cow-size "${cow_mib}M" --store "$1" --preallocation "$2"
    drop_caches
    iops=$(run_fio "nbd+unix:///snap?socket=$RUN/nbd.sock" "$rw" "$bs" "$depth")
    d snapshot remove snap
}
# qemu_write NAME QEMU-IMG-OPTIONS QEMU-NBD-OPTIONS... -> IOPS into a fresh qcow2 overlay of $write_mib MiB
qemu_write() {
    local name=$1 create=$2; shift 2
    rm -f "$work/overlay.qcow2"
    qemu-img create -q -f qcow2 -b "$base" -F raw ${create:+-o "$create"} "$work/overlay.qcow2" "${write_mib}M"
    drop_caches
    start_server "$name" qemu-nbd -t -k "$work/$name.sock" "$@" -f qcow2 "$work/overlay.qcow2"
    iops=$(run_fio "nbd+unix:///?socket=$work/$name.sock" "$rw" "$bs" "$depth"); stop_server
}

# one_write SERVER RW BS DEPTH -> IOPS, each on a fresh overlay
one_write() {
    local server=$1 rw=$2 bs=$3 depth=$4 iops
    case "$server" in
        dmsnap) dmsnap_write P full ;;
        dmsnap-sparse) dmsnap_write P off ;;
        dmsnap-N) dmsnap_write N full ;;
        qemu-nbd) qemu_write qemu "" --cache=none --aio=native ;;
        qemu-nbd-prealloc) qemu_write qemu-pa preallocation=full,extended_l2=on --cache=none --aio=native ;;
        qemu-nbd-wt) qemu_write qemu-wt "" --cache=writethrough ;; # each write flushed before its reply
        nbdkit-cow)
            drop_caches
            start_server nbdkit-cow nbdkit -f -U "$work/nbdkit-cow.sock" --filter=cow file "$base"
            iops=$(run_fio "nbd+unix:///?socket=$work/nbdkit-cow.sock" "$rw" "$bs" "$depth"); stop_server ;;
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
run_group read dmsnap nbdkit-file nbdkit-file-nocache nbdkit-file-nocache-random
run_group write dmsnap dmsnap-sparse dmsnap-N qemu-nbd qemu-nbd-prealloc qemu-nbd-wt nbdkit-cow

kernel=$(uname -r); jdk=$("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1)
fs=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
body="Machine: $(nproc) cores, $kernel; JDK: $jdk; $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), $(qemu-nbd --version | head -n 1); files on $fs; $(date +%F).
Command: \`bench/nbd-vs-peers.sh --size-mib $size_mib --write-mib $write_mib --seconds $seconds --rounds $rounds\` (fio --ioengine=nbd over each server's Unix socket; a $size_mib MiB base of random data; page cache dropped before each run. Reads: 4 KiB random ${seconds} s time-based, 1 MiB sequential the whole base once. Writes: 64 MiB of 4 KiB random or $((write_mib / 2)) MiB of 1 MiB sequential writes into the first $write_mib MiB, each block written once, into a fresh overlay each run: dmsnap snapshot \`P 8\` on a new ${cow_mib} MiB COW written full of zeroes first (\`--preallocation full\`, thick as an LV) or sparse (dmsnap-sparse), dmsnap-N \`N 8\` on a thick COW; qemu-nbd \`-t --cache=none --aio=native\` on a new $write_mib MiB qcow2 over the base, sparse or \`-o preallocation=full,extended_l2=on\` (qemu-nbd-prealloc); qemu-nbd-wt: \`--cache=writethrough\`, every write flushed before its reply; nbdkit \`--filter=cow\`).

$table

What the write rows compare. dmsnap's P store completes a first-touch write only when its exception is
committed (the data, then the area entries, each flushed; spec 2.8 and checklist 30, as the kernel's
persistent store), so at queue depth 1 every reply costs two device flushes; deeper queues share them
(a commit round spans every area the staged entries fill). qemu-nbd with cache=none and nbdkit's cow
filter flush nothing until the client sends FLUSH; qemu-nbd-wt is the qcow2 peer at P's durability. The
N store commits nothing (as the kernel's transient store), like nbdkit's cow overlay, a temporary file
that is gone when nbdkit exits; nbdkit writes it through the page cache, dmsnap writes with O_DIRECT.
A sparse COW file costs dmsnap twice: each first write of a chunk allocates blocks (ext4 then commits
its journal on the next flush) and takes the inode lock, so concurrent first writes run one at a time;
a thick COW is what dm-snapshot has on an LV. The reads: dmsnap reads with O_DIRECT into request buffers
in huge pages from 64 KiB on, large queue-depth-1 reads in 256 KiB pieces sent as they complete; nbdkit
file reads through the page cache: the kernel's readahead (read_ahead_kb $(cat /sys/block/"$(basename "$(df --output=source "$work" | tail -1)")"/queue/read_ahead_kb 2>/dev/null || echo ?)
here) prefetches the sequential reads and brings in neighbours of each random 4 KiB miss, which later
random reads hit (cache=none drops only the pages a request read); nocache-random turns readahead off,
so every request is one device read, as dmsnap's."
echo "$body"
bench_record "NBD vs nbdkit and qemu-nbd" "$body"
