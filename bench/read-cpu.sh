#!/usr/bin/env bash
# Server CPU per 4 KiB random read, dmsnap beside nbdkit file, in one run: the user + system time
# of each server process (all threads: JIT and GC included) from /proc/PID/stat across one fio job
# (nbd engine, time-based), divided by the requests fio completed. CPU per request depends far
# less on other load than IOPS do, so this is the measure on a busy machine; IOPS are printed too.
#   dmsnap: a 256 MiB base (random data) as origin `vol` and a snapshot `snap` with 64 KiB chunks on
#     a sparse COW, the daemon in cache mode --cache (default writeback, the daemon's default: the
#     base and COW read through the page cache, warm as nbdkit's; none: O_DIRECT), some chunks
#     copied (64 KiB random writes to the origin), warmed up first (JIT); reads of each export;
#   nbdkit file on a copy of the base, its page cache warm (it reads through it), the peer the
#     ratio column divides by; and nbdkit file cache=none fadvise=random, which reads every request
#     from the disk as dmsnap does;
#   --compare LAUNCHER: also another build's dmsnap (e.g. of main, in a clone) on its own copies,
#     its daemon started with --compare-args ARGS (e.g. --compare ./dmsnap --compare-args
#     '--nbd-poll-max-ns 0': this build without polling);
#     so a change is measured before/after in the same run.
# Each round runs every server once per workload (4 KiB random reads at queue depth 1 and 16 of
# the origin and of the snapshot), in an order that turns each round; medians over the rounds.
# --jfr FILE: this tree's daemon records a JFR profile (settings=profile) into FILE.
#   bench/read-cpu.sh [--record] [--dir DIR] [--seconds S] [--rounds R] [--cache MODE] [--compare LAUNCHER]
#     [--compare-args ARGS] [--jfr FILE]
seconds=10; rounds=3; size_mib=256; compare=""; compare_args=""; jfr=""; cache=writeback
bench_extra_usage="[--seconds S] [--rounds R] [--cache MODE] [--compare LAUNCHER] [--compare-args ARGS] [--jfr FILE]"
bench_option() {
    case "$1" in
        --seconds) seconds=$2 ;;
        --rounds) rounds=$2 ;;
        --cache) cache=$2 ;;
        --compare) compare=$(readlink -f "$2") ;;
        --compare-args) compare_args=$2 ;;
        --jfr) jfr=$(readlink -f "$2") ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_tools fio jq nbdkit
bench_workdir
hz=$(getconf CLK_TCK)

declare -A pid=() uri=()
pids=()
cleanup() {
    for p in "${pids[@]}"; do bench_stop_server "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT

base="$work/base.img"
echo "filling $base with $size_mib MiB of random data..." >&2
fio --name=fill --filename="$base" --size="${size_mib}M" --rw=write --bs=1M --direct=1 --ioengine=psync \
    --refill_buffers --output-format=terse >/dev/null

# start_dmsnap NAME LAUNCHER [JAVA-OPTIONS [DAEMON-ARGS]]: a daemon on its own copy of the base with
# `vol` and `snap`
start_dmsnap() {
    local name=$1 launcher=$2 run="$work/$1.run" daemon_args
    read -ra daemon_args <<<"${4:-}"
    cp "$base" "$work/$name.img"
    sync "$work/$name.img"
    "$launcher" --version >/dev/null
    DMSNAP_JAVA_OPTS="${3:-}" bench_start_server "$name" "$run/control.sock" "$launcher" daemon --run-dir "$run" \
        --cache "$cache" "${daemon_args[@]}"
    pid[$name]=$server_pid
    pids+=("$server_pid")
    "$launcher" origin create vol "$work/$name.img" --run-dir "$run" >/dev/null
    "$launcher" snapshot create vol snap --cow "$work/$name.cow" --cow-size "$((size_mib * 5 / 4))M" \
        --chunk-size 128 --run-dir "$run" >/dev/null
    # About a tenth of the chunks copied out (fio's default seed: the same ones on every daemon).
    bench_fio "$work/fio.json" "nbd+unix:///vol?socket=$run/nbd.sock" --rw=randwrite --bs=64k \
        --size="${size_mib}M" --io_size="$((size_mib / 10))M"
    uri[$name:origin]="nbd+unix:///vol?socket=$run/nbd.sock"
    uri[$name:snapshot]="nbd+unix:///snap?socket=$run/nbd.sock"
    cat "$work/$name.img" "$work/$name.cow" >/dev/null # writeback reads them through the page cache
    echo "warming $name up..." >&2
    for export in origin snapshot; do
        for depth in 16 1; do
            bench_fio "$work/fio.json" "${uri[$name:$export]}" --rw=randread --bs=4k --iodepth="$depth" \
                --size="${size_mib}M" --time_based --runtime="$seconds"
        done
    done
}

servers=(dmsnap)
start_dmsnap dmsnap "$ROOT/dmsnap" "${jfr:+-XX:StartFlightRecording=filename=$jfr,dumponexit=true,settings=profile}"
if [ -n "$compare" ]; then
    servers+=(compare)
    start_dmsnap compare "$compare" "" "$compare_args"
fi
# start_nbdkit NAME FILE-PARAMS...: nbdkit file on its own copy of the base
start_nbdkit() {
    local name=$1
    shift
    cp "$base" "$work/$name.img"
    sync "$work/$name.img" # clean pages, which cache=none can drop
    bench_start_server "$name" "$work/$name.sock" nbdkit -f -U "$work/$name.sock" file "$work/$name.img" "$@"
    pid[$name]=$server_pid
    pids+=("$server_pid")
    servers+=("$name")
    uri[$name:origin]="nbd+unix:///?socket=$work/$name.sock"
    uri[$name:snapshot]=${uri[$name:origin]}
}
start_nbdkit nbdkit-file
cat "$work/nbdkit-file.img" >/dev/null # into the page cache, where nbdkit file reads it
# The same device work as dmsnap's: every request read from the disk (pages dropped after each
# request, no readahead).
start_nbdkit nbdkit-file-nocache cache=none fadvise=random
dd if="$work/nbdkit-file-nocache.img" iflag=nocache count=0 status=none # none of it cached to begin with

# measure SERVER EXPORT DEPTH -> "µs-per-request IOPS"
measure() {
    local before after requests
    before=$(bench_cpu_ticks "${pid[$1]}")
    bench_fio "$work/fio.json" "${uri[$1:$2]}" --rw=randread --bs=4k --iodepth="$3" --size="${size_mib}M" \
        --time_based --runtime="$seconds" --randrepeat=0
    after=$(bench_cpu_ticks "${pid[$1]}")
    requests=$(jq '.jobs[0].read.total_ios' "$work/fio.json")
    awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" -v iops="$(jq '.jobs[0].read.iops' "$work/fio.json")" \
        'BEGIN { printf "%.1f %.0f", t * 1e6 / hz / n, iops }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

table="| workload | server | CPU µs/request per round | median CPU µs/request | CPU / nbdkit file | CPU / nbdkit nocache | median IOPS |
|---|---|---|---|---|---|---|"
for export in origin snapshot; do
    for depth in 1 16; do
        declare -A cpu=() iops=()
        for round in $(seq 1 "$rounds"); do
            n=${#servers[@]}
            for i in $(seq 0 $((n - 1))); do
                s=${servers[$(((i + round) % n))]}
                echo "  4k randread qd$depth $export $s round $round" >&2
                read -r c o <<<"$(measure "$s" "$export" "$depth")"
                cpu[$s]="${cpu[$s]:-} $c"
                iops[$s]="${iops[$s]:-} $o"
            done
        done
        peer=$(median "${cpu[nbdkit-file]}")
        nocache=$(median "${cpu[nbdkit-file-nocache]}")
        for s in "${servers[@]}"; do
            m=$(median "${cpu[$s]}")
            table="$table
| 4k randread qd$depth $export | $s |${cpu[$s]} | $m | $(ratio "$m" "$peer") | $(ratio "$m" "$nocache") | $(median "${iops[$s]}") |"
        done
        unset cpu iops
    done
done

compare_commit=$([ -z "$compare" ] || git -C "$(dirname "$compare")" log -1 --format=%h 2>/dev/null || echo ?)
# The device's own share: fio reading the base itself with O_DIRECT (no NBD, no server), its CPU
# from its own report (usr_cpu + sys_cpu of its job runtime, summed over its threads).
floor() { # ENGINE DEPTH JOBS -> µs per read
    fio --name=floor --filename="$base" --size="${size_mib}M" --rw=randread --bs=4k --direct=1 \
        --ioengine="$1" --iodepth="$2" --numjobs="$3" --group_reporting --time_based --runtime="$seconds" \
        --randrepeat=0 --output-format=json --output="$work/floor.json" >/dev/null
    jq -r '.jobs[0] | (.usr_cpu + .sys_cpu) / 100 * .job_runtime * 1000 / .read.total_ios | . * 10 | round / 10' \
        "$work/floor.json"
}
floors="| device read, no NBD (fio on the base file, O_DIRECT) | CPU µs/read per round | median |
|---|---|---|"
for spec in "psync 1 1 qd1, one thread" "psync 1 16 qd16, 16 threads (dmsnap's model)" "io_uring 16 1 qd16, io_uring, one thread"; do
    read -r engine depth jobs what <<<"$spec"
    runs=""
    for round in $(seq 1 "$rounds"); do
        echo "  floor $what round $round" >&2
        runs="$runs $(floor "$engine" "$depth" "$jobs")"
    done
    floors="$floors
| $what |$runs | $(median "$runs") |"
done

kernel=$(uname -r); jdk=$("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1)
body="Machine: $(nproc) cores, $kernel, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; JDK: $jdk; $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'); $(date +%F).
Command: \`bench/read-cpu.sh --seconds $seconds --rounds $rounds --cache $cache${compare:+ --compare $compare}${compare_args:+ --compare-args '$compare_args'}\` (server CPU = utime + stime of the server process from /proc/PID/stat across one fio job of ${seconds} s, nbd engine over the Unix socket, over the requests completed; ${size_mib} MiB base; dmsnap: origin \`vol\` and snapshot \`snap\`, 64 KiB chunks, a tenth copied out, the daemon's cache mode \`$cache\` (writeback: base and COW read through the page cache, warm as nbdkit's; none: O_DIRECT); nbdkit file through a warm page cache (the ratio's peer), nbdkit-file-nocache with \`cache=none fadvise=random\` (every request a disk read); the nbdkit rows are the same server for both exports${compare:+; compare: the build of $compare (commit $compare_commit)${compare_args:+, its daemon run with \`$compare_args\`}, on its own copies}).

$table

$floors

What the rows compare. In cache mode writeback (the default) dmsnap reads through the page cache as
nbdkit file does: a request is a copy. In cache mode none dmsnap reads with O_DIRECT: every request is a device read,
whose kernel work (the block layer, the virtual disk's notification, a sleep until the interrupt)
is most of a request's CPU; the floor table is that work without NBD. nbdkit file reads through the
page cache: with the base cached (it fits), a request is a copy, no device read at all, so its CPU
is below dmsnap's device floor. nbdkit-file-nocache (\`cache=none fadvise=random\`, nothing cached)
does the same device work as dmsnap. At queue depth 1 dmsnap serves a request on the connection's
thread (read the request, read the device, send the reply: no thread hand-off), and then polls
the socket for the next request up to \`--nbd-poll-max-ns\` (100 µs) before it sleeps: on an idle
machine the CPU it polls on stays awake, and polling is CPU spent while waiting, so CPU per request
is about the time between requests there (nbdkit sleeps, and each wake-up of an idle VM CPU costs
both servers CPU too). At queue depth 16 a read is first tried on the connection's thread with
\`preadv2(RWF_NOWAIT)\` (writeback only: the page cache holds it or it would wait), its reply
handed to the connection's writer thread, which gathers the replies that wait into one write; a
read that would wait goes to an I/O thread (a blocking pread) and then to the writer: each hand-off
(a futex wake-up, a context switch) is CPU above the floor. compare (its own build, when given)
shows the same rows before a change."
echo "$body"
bench_record "Read CPU per request vs nbdkit file" "$body"
