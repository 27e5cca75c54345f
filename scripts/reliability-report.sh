#!/usr/bin/env bash
# Regenerates the figures section of RELIABILITY.md: each promise's test, run and counted.
#
#   scripts/reliability-report.sh                 run the reliability tests (bounded) and write the figures
#   scripts/reliability-report.sh --long          the same, longer: fuzzers x10, 100 + 600 kills, a 10-minute soak
#   scripts/reliability-report.sh --figures FILE  only write the figures the tests already recorded in FILE
#                                                 (./test.sh does this after the whole suite)
#
# Tests record figures with Figures.record (Java, store test-jar) or `figure` (tests/e2e/lib.sh):
# lines of KEY<TAB>VALUE appended to $DMSNAP_FIGURES; a later line for a key wins.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT"
DOC="$ROOT/RELIABILITY.md"

# The tests behind RELIABILITY.md's promises: JUnit classes (mvn -Dtest) and e2e scripts.
JAVA_TESTS=(
    CowImageFuzzTest CowToolsFuzzTest TableFuzzTest ControlFuzzTest NbdFuzzTest
    NbdHostileClientTest NbdFairnessTest NbdTlsTest NbdAccessTest DaemonAccessTest
    FailingDevicesTest FailingCowFileTest FailingDeviceNbdTest CowMonitorFullFileSystemTest
    InvalidationLogTest InvalidationMetricsTest PartlyFailingCowTest FileDeviceBadInputTest FileDeviceShrinkTest
    PersistentStoreCrashTest MergeCrashTest SnapshotModelTest SnapshotModelOnTmpfsTest KernelScenarioReplayTest
    DaemonStateSafetyTest StateStoreTest ControlHandlerRecordingTest MergeFlowsTest ControlServerTest DaemonRequestsTest
    DaemonRestoreTest DeviceManagerConcurrencyTest CowMonitorGrowTest PersistentExceptionStoreTest
    BackingDevicesOpenTest DeviceArgumentTest DeviceManagerNameTest
)
E2E_TESTS=(failing-devices cow-overflow restart crash soak state-safety state-dir-lock nbd-tls non-root daemon-restore merge)

figures=""
long=false
while [ $# -gt 0 ]; do
    case "$1" in
        --figures) figures=$2; shift 2 ;;
        --long) long=true; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "reliability-report.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "$figures" ]; then
    # shellcheck source=scripts/jdk.sh
    . "$ROOT/scripts/jdk.sh"
    dmsnap_find_jdk || exit 1
    dmsnap_find_maven || exit 1
    mkdir -p "$ROOT/target/reliability"
    figures="$ROOT/target/reliability/figures.tsv"
    : >"$figures"
    export DMSNAP_FIGURES="$figures"
    scale=1
    if $long; then
        scale=10
        export SOAK_SECONDS=600 RESTART_KILLS=100 CRASH_KILLS=600
    fi
    tests=$(IFS=,; echo "${JAVA_TESTS[*]}")
    # -Dtest selects from every module; a class a module lacks is no failure there.
    dmsnap_mvn -ntp verify -DskipITs -Dtest="$tests" -Dsurefire.failIfNoSpecifiedTests=false \
        -Ddmsnap.tests.fuzzScale=$scale
    for t in "${E2E_TESTS[@]}"; do
        [ -f "tests/e2e/$t.sh" ] || continue
        echo "-- $t"
        bash "tests/e2e/$t.sh"
    done
fi

[ -f "$figures" ] || { echo "reliability-report.sh: no figures file $figures" >&2; exit 1; }

# The last value of each key, in key order.
table=$(awk -F'\t' 'NF == 2 { v[$1] = $2 } END { for (k in v) print k "\t" v[k] }' "$figures" | sort)
count=$(printf '%s\n' "$table" | grep -c . || true)
mkdir -p "$ROOT/target"
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "<!-- figures:begin (written by scripts/reliability-report.sh; do not edit by hand) -->"
    echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) cores, kernel $(uname -r), $count figures."
    echo
    echo "| figure | value |"
    echo "|---|---|"
    printf '%s\n' "$table" | awk -F'\t' 'NF == 2 { gsub(/\|/, "\\|", $2); print "| `" $1 "` | " $2 " |" }'
    echo "<!-- figures:end -->"
} >"$ROOT/target/reliability-figures.md"

if [ -f "$DOC" ] && grep -q '<!-- figures:begin' "$DOC"; then
    awk -v gen="$ROOT/target/reliability-figures.md" '
        /<!-- figures:begin/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /<!-- figures:end/ { skip = 0; next }
        !skip { print }' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
    echo "== reliability figures ($count) written to RELIABILITY.md"
fi
cat "$ROOT/target/reliability-figures.md"
