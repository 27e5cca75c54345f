#!/usr/bin/env bash
# FileDevice (O_DIRECT, one thread, queue depth 1) next to fio --ioengine=psync --direct=1 on
# the same file, pattern by pattern, in one run. Prints a Markdown table; with --record it is
# also written into bench/RESULTS.md (section "FileDevice vs fio").
#   bench/device-vs-fio.sh [--record] [--dir DIR] [--size-mib N] [--seconds S] [--rounds R]
# Each pattern runs R rounds of (fio, one JMH fork), alternating, so that both tools see the
# same mix of process placements and host-cache states; the table gives means and spreads.
size_mib=1024; seconds=10; rounds=3
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
bench_prepare fio jq
file="$work/bench.img"
echo "filling $file with $size_mib MiB of random data..." >&2
fio --name=fill --filename="$file" --size="${size_mib}M" --rw=write --bs=1M --direct=1 \
    --ioengine=psync --refill_buffers --output-format=terse >/dev/null

# pattern  fio-rw     bs     jmh-method
patterns="randread-4k randread 4k randomRead4k
randwrite-4k randwrite 4k randomWrite4k
read-1m read 1m sequentialRead1m
write-1m write 1m sequentialWrite1m"

rows=""
run_fio() { # name rw bs -> IOPS
    local json key
    json=$(fio --name="$1" --filename="$file" --size="${size_mib}M" --rw="$2" --bs="$3" \
        --direct=1 --ioengine=psync --iodepth=1 --numjobs=1 --time_based --runtime="$seconds" \
        --norandommap --randrepeat=0 --output-format=json)
    if [[ $2 == *read* ]]; then key=read; else key=write; fi
    echo "$json" | jq ".jobs[0].$key.iops"
}

while read -r name rw bs method; do
    fio_runs=""
    jmh_runs=""
    for round in $(seq 1 "$rounds"); do
        fio_runs="$fio_runs $(printf '%.0f' "$(run_fio "$name" "$rw" "$bs")")"
        jmh_json="$work/$method-$round.json"
        "${java[@]}" -jar "$jar" \
            "FileDeviceBenchmark.$method\$" -f 1 -wi 1 -w 3s -i 1 -r "${seconds}s" \
            -jvmArgsAppend "$fork_args -Ddmsnap.bench.file=$file" -rf json -rff "$jmh_json" >"$work/$method.log" 2>&1 \
            || { cat "$work/$method.log" >&2; exit 1; }
        jmh_runs="$jmh_runs $(printf '%.0f' "$(jq '.[0].primaryMetric.score' "$jmh_json")")"
    done
    mib=$( [ "$bs" = 4k ] && echo 4096 || echo 1048576 )
    row=$(awk -v n="$name" -v fr="$fio_runs" -v jr="$jmh_runs" -v m="$mib" '
        function stats(list, out,   k, x, i, s, q) { k = split(list, x, " "); s = 0; for (i = 1; i <= k; i++) s += x[i];
            out["mean"] = s / k; q = 0; for (i = 1; i <= k; i++) q += (x[i] - out["mean"]) ^ 2; out["sd"] = k > 1 ? sqrt(q / (k - 1)) : 0 }
        BEGIN { stats(fr, f); stats(jr, j);
            printf "| %s | %s | %.0f ± %.0f | %.1f | %s | %.0f ± %.0f | %.1f | %.3f |", n, fr, f["mean"], f["sd"], f["mean"]*m/1048576,
                jr, j["mean"], j["sd"], j["mean"]*m/1048576, j["mean"] / f["mean"] }')
    echo "$row" >&2
    rows="$rows$row"$'\n'
done <<<"$patterns"

fs=$(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 }')
header="Machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); JDK: $("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n1); fio: $(fio --version); file: ${size_mib} MiB on $fs; $(date -u +%Y-%m-%d).
Command: \`bench/device-vs-fio.sh --size-mib $size_mib --seconds $seconds --rounds $rounds\` (per pattern, $rounds rounds of: fio psync direct=1 iodepth=1 numjobs=1 time_based ${seconds}s, then one JMH fork, 3s warmup + ${seconds}s measurement, one thread; mean ± standard deviation over the rounds; the ratio is of the means).

| pattern | fio IOPS per round | fio IOPS mean ± sd | fio MiB/s | FileDevice ops/s per round | FileDevice mean ± sd | FileDevice MiB/s | FileDevice / fio |
|---|---|---|---|---|---|---|---|
$rows"
echo "$header"
bench_record "FileDevice vs fio (O_DIRECT, queue depth 1)" "$header"
