#!/usr/bin/env bash
# Engine benchmarks of issue 5, in one run: origin first writes with 1 and 4 snapshots next to
# the model bound (the same reads, COW writes, commits and data writes done directly), snapshot
# reads next to raw O_DIRECT reads, and handover (live refresh) next to activation from disk
# for 10 k and 1 M exceptions. --record writes the tables into bench/RESULTS.md.
#   bench/engine-bench.sh [--record] [--dir DIR]
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_prepare jq

run() { # name pattern -> "method params score error unit" lines
    local name=$1; shift
    "${java[@]}" -jar "$jar" "$@" \
        -jvmArgsAppend "$fork_args -Ddmsnap.bench.dir=$work" -rf json -rff "$work/$name.json" >"$work/$name.log" 2>&1 \
        || { cat "$work/$name.log" >&2; exit 1; }
    jq -r '.[] | "\(.benchmark | split(".") | last) \(.params // {} | to_entries | map("\(.key)=\(.value)") | join(",") | if . == "" then "-" else . end) \(.primaryMetric.score) \(.primaryMetric.scoreError) \(.primaryMetric.scoreUnit)"' "$work/$name.json"
}
echo "== origin first writes" >&2
writes=$(run writes SnapshotWriteBenchmark -f 3)
echo "$writes" >&2
echo "== snapshot reads" >&2
reads=$(run reads SnapshotReadBenchmark -f 3)
echo "$reads" >&2
echo "== handover" >&2
handover=$(run handover HandoverBenchmark)
echo "$handover" >&2

rows() { awk '{ printf "| %s | %s | %.1f ± %.1f %s |\n", $1, $2, $3, $4, $5 }'; }
ratio() { # lines pattern-a pattern-b -> ratio of scores
    awk -v a="$2" -v b="$3" '$1 " " $2 == a { x = $3 } $1 " " $2 == b { y = $3 } END { if (y > 0) printf "%.3f", x / y; else print "n/a" }' <<<"$1"
}
fs=$(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 }')
body="Machine: $(nproc) cores, $(uname -r); JDK: $("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n1); files on $fs; $(date -u +%Y-%m-%d).
Command: \`bench/engine-bench.sh\` (JMH 1 fork, 3 forks for the first writes and the reads; throughput 2x3s warmup + 3x5s; single shots 3 warmup + 10 measured).

Origin first writes, 4 KiB, each into a chunk no snapshot has yet (target: engine >= 0.9 of the model bound):

| benchmark | params | score |
|---|---|---|
$(rows <<<"$writes")

Engine / model bound: 1 snapshot $(ratio "$writes" "engineFirstWrite snapshots=1" "modelBound snapshots=1"), 4 snapshots $(ratio "$writes" "engineFirstWrite snapshots=4" "modelBound snapshots=4").

4 KiB random reads, half the chunks remapped to the COW (target: snapshot >= 0.95 of raw):

| benchmark | params | score |
|---|---|---|
$(rows <<<"$reads")

Snapshot / raw: $(ratio "$reads" "snapshotRead -" "rawRead -").

Live refresh (handover) vs activation from disk (target: handover <= 1 ms and independent of the count):

| benchmark | params | time |
|---|---|---|
$(rows <<<"$handover")
"
echo "$body"
bench_record "Engine (issue 5)" "$body"
