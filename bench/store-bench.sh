#!/usr/bin/env bash
# Exception-store benchmarks of issue 4, in one run: ExceptionTable footprint (10 M random and
# sequential exceptions), ExceptionTable lookup/insert throughput, activation (load) of a COW
# with 1 M exceptions, and commits per second with group commit vs one flush per commit at 1, 16
# and 64 committers on a real file. --record writes the tables into bench/RESULTS.md.
#   bench/store-bench.sh [--record] [--dir DIR]
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_prepare jq

echo "== footprint" >&2
footprint=$("${java[@]}" -cp "$jar" dmsnap.bench.ExceptionTableFootprint 10000000)
echo "$footprint" >&2

jmh() { # name args... -> json file
    local name=$1; shift
    "${java[@]}" -jar "$jar" "$@" -jvmArgsAppend "$fork_args -Ddmsnap.bench.dir=$work" -rf json -rff "$work/$name.json" \
        >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
    jq -r '.[] | "\(.benchmark | split(".") | last) \(.params // {} | to_entries | map("\(.key)=\(.value)") | join(",")) threads=\(.threads) \(.primaryMetric.score) \(.primaryMetric.scoreError) \(.primaryMetric.scoreUnit)"' "$work/$name.json"
}
echo "== ExceptionTable throughput" >&2
table=$(jmh table 'ExceptionTableBenchmark')
echo "$table" >&2
echo "== load of a COW with 1 M exceptions" >&2
load=$(jmh load 'PersistentLoadBenchmark')
echo "$load" >&2
echo "== commits" >&2
commits=""
for t in 1 16 64; do
    commits="$commits$(jmh "commit-$t" 'PersistentCommitBenchmark' -t "$t")"$'\n'
done
echo "$commits" >&2

fs=$(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 }')
table_rows=$(echo "$table" | awk '{ printf "| %s | %s | %.0f ± %.0f %s |\n", $1, $2, $4, $5, $6 }')
load_rows=$(echo "$load" | awk '{ printf "| %s | %s | %.1f ± %.1f %s |\n", $1, $2, $4, $5, $6 }')
commit_rows=$(echo "$commits" | awk 'NF {
        split($2, kv, ","); g = ""; w = "";
        for (i in kv) { split(kv[i], p, "="); if (p[1] == "groupCommit") g = p[2]; if (p[1] == "writeData") w = p[2] }
        key = $3 " " w;
        if (g == "true") { gt[key] = $4; ge[key] = $5 } else { st[key] = $4; se[key] = $5 } }
    END { for (k in gt) { split(k, q, " "); sub("threads=", "", q[1]);
          printf "| %s | %s | %.0f ± %.0f | %.0f ± %.0f | %.1fx |\n", q[1], q[2] == "true" ? "yes" : "no", gt[k], ge[k], st[k], se[k], gt[k] / st[k] } }' | sort -t'|' -k3,3 -k2,2n)
body="Machine: $(nproc) cores, $(uname -r); JDK: $("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n1); files on $fs; $(date -u +%Y-%m-%d).
Command: \`bench/store-bench.sh\` (JMH 1 fork; throughput 2x2s warmup + 3x3s; load: single shot, 2 warmup + 5 measured; commits 1x3s + 3x5s).

Bytes per exception (\`java -cp bench/target/benchmarks.jar dmsnap.bench.ExceptionTableFootprint 10000000\`; target <= 16 random, far less sequential):

\`\`\`
$footprint
\`\`\`

ExceptionTable on 10 M random exceptions, one thread:

| benchmark | params | score |
|---|---|---|
$table_rows

Activating a persistent COW with 1 M exceptions (chunk 8: 3907 areas, open + read + fill the table + close; target <= 1 s):

| benchmark | params | time |
|---|---|---|
$load_rows

Commits per second, each = allocate + (with data: a 4 KiB O_DIRECT write of the chunk) + commit + wait until durable (target: group >= 10x single at 64):

| committers | with 4 KiB data write | group commit (ops/s) | one flush per commit (ops/s) | ratio |
|---|---|---|---|---|
$commit_rows
"
echo "$body"
bench_record "Exception stores (issue 4)" "$body"
