# Shared by the bench scripts (sourced): the JDK, option parsing for --record / --dir, the
# benchmarks jar (built when missing), and a scratch directory removed on exit.
# After sourcing: $ROOT, $DMSNAP_JAVA_HOME, ${java[@]}, $fork_args, $record, $dir, $jar, $work, and
# bench_record TITLE BODY.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[1]}")")/.." && pwd)
. "$ROOT/scripts/jdk.sh"
dmsnap_find_jdk
record=0
dir=${TMPDIR:-/tmp}
# The JDK as the scripts run it, and what every JMH fork needs: -jvmArgsAppend on the command line
# replaces @Fork(jvmArgsAppend), so the scripts pass these again with their own properties.
java=("$DMSNAP_JAVA_HOME/bin/java" --sun-misc-unsafe-memory-access=allow)
fork_args="--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
bench_extra_usage=${bench_extra_usage:-}

# bench_parse_args "$@": handles --record and --dir; other options go to bench_option NAME VALUE.
bench_parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --record) record=1 ;;
            --dir) dir=$2; shift ;;
            --*)
                if declare -F bench_option >/dev/null && [ $# -ge 2 ] && bench_option "$1" "$2"; then
                    shift
                else
                    echo "usage: $0 [--record] [--dir DIR] $bench_extra_usage" >&2
                    exit 2
                fi ;;
            *) echo "usage: $0 [--record] [--dir DIR] $bench_extra_usage" >&2; exit 2 ;;
        esac
        shift
    done
}

# (bench_jar=0 bench_prepare ...: a script that runs no JMH benchmark, no jar)
bench_prepare() { # tools...: checks tools, builds the jar if missing, makes $work
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install $tool)" >&2; exit 1; }
    done
    jar="$ROOT/bench/target/benchmarks.jar"
    if [ "${bench_jar:-1}" = 1 ] && [ ! -f "$jar" ]; then
        dmsnap_find_maven
        (cd "$ROOT" && dmsnap_mvn -q -DskipTests package -pl bench -am)
    fi
    work=$(mktemp -d "$dir/dmsnap-bench.XXXXXX")
    trap 'rm -rf "$work"' EXIT
}

bench_record() { # title body
    if [ "$record" -eq 1 ]; then
        python3 "$ROOT/bench/record-results.py" "$ROOT/bench/RESULTS.md" "$1" "$2"
        echo "recorded in $ROOT/bench/RESULTS.md" >&2
    fi
}
