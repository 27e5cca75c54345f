#!/usr/bin/env bash
# Merge throughput of issue 8: a persistent COW holding --mib MiB of data in consecutive chunks
# (each area one run, as after sequential writes) merged by the engine, next to a raw O_DIRECT
# copy of the same bytes between the same files, alternated in one process (MergeThroughput),
# for chunk sizes 8, 16 and 32 sectors. --record writes the table into bench/RESULTS.md.
#   bench/merge-bench.sh [--record] [--dir DIR] [--mib N] [--rounds N]
bench_extra_usage="[--mib N] [--rounds N]"
mib=256
rounds=9
bench_option() {
    case "$1" in
        --mib) mib=$2 ;;
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
bench_prepare

echo "== merge vs raw copy ($mib MiB, $rounds rounds per chunk size)" >&2
results=$("$DMSNAP_JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Ddmsnap.bench.dir="$work" \
    -cp "$jar" dmsnap.bench.MergeThroughput "$mib" "$rounds" 8 16 32)
echo "$results" >&2

fs=$(df -T "$dir" | awk 'NR==2 { print $2 " on " $1 }')
rows=$(awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    kib = v["chunk"] / 2; run = v["chunk"] * 32 * v["chunk"] / 2;
    printf "| %d (%d KiB) | %s | %d | %d | %.2f | %s |\n", v["chunk"], kib, (run >= 1024 ? run / 1024 " MiB" : run " KiB"),
        v["raw"], v["merge"], v["ratio"], v["rounds"]
}' <<<"$results")
body="Machine: $(nproc) cores, $(uname -r); JDK: $("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n1); files on $fs; $(date -u +%Y-%m-%d).
Command: \`bench/merge-bench.sh --mib $mib --rounds $rounds\` (one process: per chunk size a $mib MiB COW of consecutive
chunks with random data, over an allocated origin; a warm-up, then $rounds rounds of: raw copy, merge; medians).

Merge = activate the COW as snapshot-merge and wait until it is done (load, then per area one step: the run is
copied from the COW on the chunk copier's lane in 1 MiB pieces, the next run's reads overlapping this run's
writes, the origin written in the kernel's order, while the merge thread takes the next run; steps of 1 MiB or
more commit in batches (up to 64 steps or 64 MiB) on a committer thread while the copies go on: one origin flush,
their commit_merge area writes, one COW flush, then their chunks are forgotten; smaller steps commit one at a time);
raw copy = the same COW ranges to the same origin ranges, O_DIRECT 1 MiB reads and writes on one thread, one
fdatasync at the end; both with buffers in huge pages (target: merge >= 0.8 of raw):

| chunk (sectors) | run per step | raw copy MiB/s | merge MiB/s | merge / raw | per round |
|---|---|---|---|---|---|
$rows

What a step adds to the copy is what the kernel's protocol prescribes per run: the origin flush, the area write
with its flush (commit_merge), reading the previous area, forgetting the run's chunks; a run never spans two areas,
so with 4 KiB chunks a step moves at most 1 MiB. Of the raw copy's time on this VM about half is its one final
fdatasync (the host writes back what its cache took); the merge's flushes (two per batch) each wait for that
write-back of what was copied so far while the next copies go on, and loading the COW (65 536 exceptions at
4 KiB) takes 37-47 ms of the merge's time (60-110 ms before loads added runs whole). Buffers in huge pages (IoMemory) made both the copy and the raw copy
two to five times faster than with malloc'd buffers; the ratio is measured with both on huge pages.
"
echo "$body"
bench_record "Merge (issue 8)" "$body"
