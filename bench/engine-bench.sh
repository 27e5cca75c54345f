#!/usr/bin/env bash
# Engine benchmarks of issue 5, in one run: origin first writes with 1 and 4 snapshots next to
# the model bound (the same reads, COW writes, commits and data writes done directly), snapshot
# reads next to raw O_DIRECT reads, and handover (live refresh) next to activation from disk
# for 10 k and 1 M exceptions. --record writes the tables into bench/RESULTS.md.
#   bench/engine-bench.sh [--record] [--dir DIR] [--rounds R]
# The pairs compared (engine and model bound, snapshot and raw reads) run as R rounds of one
# JMH fork each, alternating, so that both sides see the same drift of this VM's disk (its
# queue-depth-1 rate moves by tens of percent between minutes); each round gives a ratio.
rounds=5
bench_extra_usage="[--rounds R]"
bench_option() {
    case "$1" in
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_prepare jq

run() { # name jmh-args... -> "method params score error unit" lines
    local name=$1; shift
    "${java[@]}" -jar "$jar" "$@" \
        -jvmArgsAppend "$fork_args -Ddmsnap.bench.dir=$work" -rf json -rff "$work/$name.json" >"$work/$name.log" 2>&1 \
        || { cat "$work/$name.log" >&2; exit 1; }
    jq -r '.[] | "\(.benchmark | split(".") | last) \(.params // {} | to_entries | map("\(.key)=\(.value)") | join(",") | if . == "" then "-" else . end) \(.primaryMetric.score) \(.primaryMetric.scoreError) \(.primaryMetric.scoreUnit)"' "$work/$name.json"
}

pair() { # label class method-a method-b [params] -> table row; R alternating rounds of one fork each
    local label=$1 class=$2 a=$3 b=$4 params=${5:-} as="" bs="" round x y
    for round in $(seq 1 "$rounds"); do
        x=$(run "$a-$round" "$class.$a\$" -f 1 ${params:+-p "$params"} | awk '{ print $3 }')
        y=$(run "$b-$round" "$class.$b\$" -f 1 ${params:+-p "$params"} | awk '{ print $3 }')
        as="$as $x"; bs="$bs $y"
        echo "  $label round $round: $a $x, $b $y" >&2
    done
    awk -v l="$label" -v as="$as" -v bs="$bs" '
        function stats(list, out,   k, v, i, s, q) { k = split(list, v, " "); s = 0; for (i = 1; i <= k; i++) s += v[i];
            out["mean"] = s / k; q = 0; for (i = 1; i <= k; i++) q += (v[i] - out["mean"]) ^ 2; out["sd"] = k > 1 ? sqrt(q / (k - 1)) : 0 }
        BEGIN { k = split(as, x, " "); split(bs, y, " "); r = ""
            for (i = 1; i <= k; i++) { q[i] = x[i] / y[i]; r = r (i > 1 ? " / " : "") sprintf("%.2f", q[i]) }
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
            median = k % 2 ? q[(k + 1) / 2] : (q[k / 2] + q[k / 2 + 1]) / 2
            stats(as, A); stats(bs, B)
            printf "| %s | %.0f ± %.0f | %.0f ± %.0f | %s | %.3f | %.3f |\n", l, A["mean"], A["sd"], B["mean"], B["sd"], r, median, A["mean"] / B["mean"] }'
}
echo "== origin first writes" >&2
writes="$(pair "1 snapshot" SnapshotWriteBenchmark engineFirstWrite modelBound snapshots=1)
$(pair "4 snapshots" SnapshotWriteBenchmark engineFirstWrite modelBound snapshots=4)"
echo "$writes" >&2
echo "== snapshot reads" >&2
reads=$(pair "4 KiB random" SnapshotReadBenchmark snapshotRead rawRead)
echo "$reads" >&2
echo "== handover" >&2
handover=$(run handover HandoverBenchmark)
echo "$handover" >&2

rows() { awk '{ printf "| %s | %s | %.1f ± %.1f %s |\n", $1, $2, $3, $4, $5 }'; }
fs=$(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 }')
body="Machine: $(nproc) cores, $(uname -r); JDK: $("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n1); files on $fs; $(date -u +%Y-%m-%d).
Command: \`bench/engine-bench.sh --rounds $rounds\` (first writes and reads: $rounds rounds of one JMH fork per side, alternating, throughput 2x3s warmup + 3x5s, mean ± sd over the rounds, the ratio per round, its median and the ratio of the means; handover: 1 fork, single shots 3 warmup + 10 measured).

Origin first writes, 4 KiB, each into a chunk no snapshot has yet, one thread (target: engine >= 0.9 of the model bound):

| snapshots | engine ops/s | model bound ops/s | engine / model per round | median | of means |
|---|---|---|---|---|---|
$writes

4 KiB random reads, half the chunks remapped to the COW, one thread (target: snapshot >= 0.95 of raw):

| reads | snapshot ops/s | raw O_DIRECT ops/s | snapshot / raw per round | median | of means |
|---|---|---|---|---|---|
$reads

Live refresh (handover) vs activation from disk (target: handover <= 1 ms and independent of the count):

| benchmark | params | time |
|---|---|---|
$(rows <<<"$handover")
"
echo "$body"
bench_record "Engine (issue 5)" "$body"
