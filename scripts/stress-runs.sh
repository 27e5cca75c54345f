#!/usr/bin/env bash
# Runs ./test.sh N times in a row (default 5) while stress-ng loads the machine beside it
# (default `--cpu 4 --io 2`), the proof that the suite does not depend on timing.
# Stops at the first failing run. Prints one line per run: its number, exit status and time.
#   scripts/stress-runs.sh [RUNS] [-- STRESS-NG ARGS...]
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
runs=${1:-5}
shift || true
[ "${1:-}" = "--" ] && shift
stress_args=("$@")
[ ${#stress_args[@]} -gt 0 ] || stress_args=(--cpu 4 --io 2)
command -v stress-ng >/dev/null || { echo "stress-runs.sh: stress-ng is not installed (apt-get install stress-ng)" >&2; exit 1; }

logs="$ROOT/target/stress-runs"
mkdir -p "$logs"
stress-ng "${stress_args[@]}" --timeout 0 --quiet &
stress=$!
trap 'kill $stress 2>/dev/null; wait $stress 2>/dev/null || true' EXIT
echo "stress-ng ${stress_args[*]} (pid $stress) beside ./test.sh, $runs runs; logs in $logs"
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    rc=0
    "$ROOT/test.sh" >"$logs/run-$i.log" 2>&1 || rc=$?
    end=$(date +%s)
    printf 'run %d: exit %d in %dm%02ds, load average %s\n' "$i" "$rc" $(((end - start) / 60)) $(((end - start) % 60)) \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    [ $rc -eq 0 ] || { echo "run $i failed: $logs/run-$i.log"; exit 1; }
done
echo "all $runs runs passed beside stress-ng ${stress_args[*]}"
