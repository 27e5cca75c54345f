#!/usr/bin/env bash
# The whole dmsnap test suite: `mvn verify` (unit tests, integration tests on real loop devices
# when root, the gcc probe of the generated bindings) and then the end-to-end tests in tests/e2e.
# As root it first installs the Debian packages the suite needs when they are missing.
# Exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$ROOT"
# shellcheck source=scripts/jdk.sh
. "$ROOT/scripts/jdk.sh"

# nbdfuse comes with libnbd-bin on Debian 12.
PACKAGES=(maven gcc libc6-dev util-linux mount e2fsprogs fio jq curl nbdkit libnbd-bin python3-libnbd nbdkit-plugin-python qemu-utils openssl asciidoctor)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: missing Debian packages: ${missing[*]}; run as root to install them, or install them yourself." >&2
        exit 1
    fi
    echo "== installing missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

dmsnap_find_jdk || exit 1
dmsnap_find_maven || exit 1
echo "== JDK: $DMSNAP_JAVA_HOME ($("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1))"
echo "== running as uid $(id -u)$( [ "$(id -u)" -eq 0 ] && echo ' (root: loop-device tests run)' || echo ' (not root: loop-device tests are skipped)')"

# Reliability figures (cases, faults, kills, writes checked) recorded by the tests as they run;
# scripts/reliability-report.sh puts them into RELIABILITY.md at the end.
mkdir -p "$ROOT/target/reliability"
export DMSNAP_FIGURES="$ROOT/target/reliability/figures.tsv"
: >"$DMSNAP_FIGURES"

echo "== mvn verify"
dmsnap_mvn -ntp ${DMSNAP_MVN_ARGS:-} verify

echo "== end-to-end tests (tests/e2e)"
passed=0
failed=0
failures=()
# crash.sh, the longest (about a third of them) and self-contained (its daemons, state, sockets and
# files in a temporary directory of its own, no ports, no loop devices), runs beside the others, as
# every test must pass on a busy machine; its output is shown when it ends.
# Its exit status goes to a file, not to `wait PID`: bash forgets a finished child's status once a
# later child of its own gets the same pid, and the suite allocates pids past pid_max (32768 on the
# CI machine: threads count); one CI run said "pid ... is not a child of this shell" of a passed run.
beside=crash
beside_log=$(mktemp)
beside_status=$(mktemp)
beside_started=$SECONDS
( rc=0; bash "tests/e2e/$beside.sh" >"$beside_log" 2>&1 || rc=$?; echo "$rc" >"$beside_status" ) &
echo "-- $beside: started beside the others (output when it ends)"
for t in tests/e2e/*.sh; do
    name=$(basename "$t" .sh)
    [ "$name" = lib ] && continue   # helpers, sourced by the tests
    [ "$name" = "$beside" ] && continue
    echo "-- $name"
    started=$SECONDS
    if bash "$t"; then
        passed=$((passed + 1))
        echo "-- $name: passed in $((SECONDS - started)) s"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "-- $name: FAILED after $((SECONDS - started)) s"
    fi
done
echo "-- $beside (beside the others)"
wait   # every child still running, which can only be the one beside
beside_rc=$(cat "$beside_status")
if [ "$beside_rc" = 0 ]; then
    cat "$beside_log"
    passed=$((passed + 1))
    echo "-- $beside: passed in $((SECONDS - beside_started)) s (its end awaited)"
else
    cat "$beside_log"
    failed=$((failed + 1))
    failures+=("$beside")
    echo "-- $beside: FAILED with exit ${beside_rc:-unknown} (its end awaited after $((SECONDS - beside_started)) s)"
fi
rm -f "$beside_log" "$beside_status"
[ $failed -eq 0 ] || echo "failed end-to-end tests: ${failures[*]}"
echo "e2e: $passed passed, $failed failed"
[ $failed -eq 0 ]

echo "== reliability figures"
scripts/reliability-report.sh --figures "$DMSNAP_FIGURES"
