# Shared by the bench scripts (sourced): the JDK, option parsing for --record / --dir, the
# benchmarks jar (built when missing), and a scratch directory removed on exit.
# After sourcing: $ROOT, $DMSNAP_JAVA_HOME, ${java[@]}, $fork_args, $record, $dir, $jar, $work, and
# bench_record TITLE BODY; for the NBD scripts bench_start_server, bench_fio and bench_cpu_ticks.
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

bench_tools() { # tools...: each must be on the PATH
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install $tool)" >&2; exit 1; }
    done
}

bench_workdir() { # makes $work, removed on exit
    work=$(mktemp -d "$dir/dmsnap-bench.XXXXXX")
    trap 'rm -rf "$work"' EXIT
}

# (bench_jar=0 bench_prepare ...: a script that runs no JMH benchmark, no jar)
bench_prepare() { # tools...: checks tools, builds the jar if missing, makes $work
    bench_tools "$@"
    jar="$ROOT/bench/target/benchmarks.jar"
    if [ "${bench_jar:-1}" = 1 ] && [ ! -f "$jar" ]; then
        dmsnap_find_maven
        (cd "$ROOT" && dmsnap_mvn -q -DskipTests package -pl bench -am)
    fi
    bench_workdir
}

# bench_start_server NAME SOCKET COMMAND...: runs a server in the background (its output in
# $work/NAME.log) and waits for its SOCKET; its pid in $server_pid.
bench_start_server() {
    local name=$1 socket=$2
    shift 2
    rm -f "$socket"
    "$@" >"$work/$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do
        [ -S "$socket" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

bench_stop_server() { # PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# bench_fio OUT URI FIO-OPTIONS...: one fio job with the nbd engine against URI, its JSON report
# in OUT; exits on any error.
bench_fio() {
    local out=$1 uri=$2
    shift 2
    fio --name=nbd --ioengine=nbd --uri="$uri" "$@" --output-format=json --output="$out" \
        >/dev/null 2>"$work/fio.err" || { cat "$work/fio.err" >&2; exit 1; }
    [ "$(jq '.jobs[0].error' "$out")" = 0 ] || { echo "fio error on $uri" >&2; exit 1; }
}

# bench_cpu_ticks PID: user + system CPU time of the whole process (all its threads) so far, in
# clock ticks (getconf CLK_TCK a second), from /proc/PID/stat (fields 14 and 15, counted after the
# command name, which may hold spaces).
bench_cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

bench_record() { # title body
    if [ "$record" -eq 1 ]; then
        python3 "$ROOT/bench/record-results.py" "$ROOT/bench/RESULTS.md" "$1" "$2"
        echo "recorded in $ROOT/bench/RESULTS.md" >&2
    fi
}
