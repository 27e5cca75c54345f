#!/usr/bin/env bash
# A freshly started daemon against itself seconds later, with each AOT cache: the time from
# starting ./dmsnap daemon to its first NBD reply (and the daemon's CPU time until then), then
# 4 KiB requests at queue depth 1 for --seconds: IOPS and the median request latency in the first
# 2 s against the last 10 s (steady state). Random reads of a snapshot whose origin is a sparse
# base (holes: the disk does no work, the reads measure the daemon's own path, which is what a
# cold JIT slows) and random first-touch writes into it (each a new exception on a sparse COW).
# Every run is a new daemon that restores the same origin and snapshot from a state directory (the
# COW copied afresh), as systemd starts one. Medians are robust on a loaded machine: a preempted
# request moves the tail, not the median. Then the start of two verbs, ./dmsnap --version and
# ./dmsnap ls (beside a running daemon): wall and CPU time.
# Caches, rounds interleaving them:
#   new:  the launcher as it is (daemon/target/dmsnap-*.aot, recorded by a daemon under I/O);
#   old:  the launcher's cache before issue 18 (trained on a call of `ls` that finds no daemon,
#         with --illegal-native-access=deny), with that option again;
#   none: no AOT cache (-XX:AOTMode=off).
# Each goes through ./dmsnap with DMSNAP_JAVA_OPTS (the JVM takes the last -XX:AOTCache given).
#   bench/warm-start.sh [--record] [--dir DIR] [--seconds S] [--rounds R]
seconds=30; rounds=5; size_mib=1024
bench_extra_usage="[--seconds S] [--rounds R]"
bench_option() {
    case "$1" in
        --seconds) seconds=$2 ;;
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args "$@"
[ "$seconds" -ge 14 ] || { echo "--seconds must be at least 14 (steady state: its last 10 s)" >&2; exit 2; }
bench_jar=0 bench_prepare
/usr/bin/python3 -c 'import nbd' 2>/dev/null || { echo "python3-libnbd is needed (apt-get install python3-libnbd)" >&2; exit 1; }
DMSNAP="$ROOT/dmsnap"
"$DMSNAP" --version >/dev/null # builds the application and its caches when stale

# The launcher's training, timed in a copy of the built tree (the real cache stays as it is).
mkdir -p "$work/tree/daemon/target" "$work/tree/scripts"
cp -p "$DMSNAP" "$work/tree/"
cp -p "$ROOT/scripts/jdk.sh" "$work/tree/scripts/"
cp -a "$ROOT/daemon/target/dmsnap.jar" "$ROOT/daemon/target/lib" "$work/tree/daemon/target/"
t0=$(date +%s%N)
DMSNAP_DEBUG=1 "$work/tree/dmsnap" --version 2>"$work/train.err" >/dev/null
train_s=$(awk -v d=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", d / 1e9 }')
grep -q "AOT cache trained" "$work/train.err" || { cat "$work/train.err" >&2; exit 1; }
rm -rf "$work/tree"
# The launcher's training before issue 18, replayed into $work/old.aot.
t0=$(date +%s%N)
"$DMSNAP_JAVA_HOME/bin/java" --enable-native-access=dmsnap.ffm,dmsnap.jextract --illegal-native-access=deny \
    -Xlog:aot=off -XX:AOTCacheOutput="$work/old.aot" -p "$ROOT/daemon/target/dmsnap.jar:$ROOT/daemon/target/lib" \
    -m dmsnap.daemon/dmsnap.cli.Main ls --run-dir "$work/none" >/dev/null 2>&1 || true
[ -f "$work/old.aot" ] || { echo "could not make the old cache" >&2; exit 1; }
old_train_s=$(awk -v d=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", d / 1e9 }')
declare -A opts=([new]="" [old]="--illegal-native-access=deny -XX:AOTCache=$work/old.aot" [none]="-XX:AOTMode=off")
configs=(new old none)
# Each cache must be one the JVM uses: a cache that does not fit is ignored silently.
for config in new old; do
    DMSNAP_JAVA_OPTS="${opts[$config]} -Xlog:aot=info:stderr" "$DMSNAP" --version 2>&1 >/dev/null | grep -q "Opened AOT cache" \
        || { echo "the JVM does not use the cache of '$config'" >&2; exit 1; }
done

daemon_pid=""
cleanup() {
    [ -z "$daemon_pid" ] || { kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

# The origin and the snapshot, made once and restored by every daemon from a copy of this state.
base="$work/base.img"
truncate -s "${size_mib}M" "$base"
RUN="$work/run"
start_daemon() { # CONFIG: a daemon restoring $work/state; sets daemon_pid (the launcher execs java: the JVM's)
    DMSNAP_JAVA_OPTS="${opts[$1]}" "$DMSNAP" daemon --run-dir "$RUN" --state-dir "$work/state" 2>"$work/daemon.log" &
    daemon_pid=$!
}
stop_daemon() {
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || { cat "$work/daemon.log" >&2; echo "the daemon did not stop cleanly" >&2; exit 1; }
    daemon_pid=""
}
await_daemon() {
    local i
    for i in $(seq 1 1200); do
        [ -S "$RUN/control.sock" ] && grep -q "daemon started" "$work/daemon.log" && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/daemon.log" >&2; echo "the daemon did not start" >&2; exit 1
}
mkdir -m 0700 "$work/state"
start_daemon new
await_daemon
"$DMSNAP" origin create vol "$base" --run-dir "$RUN" >/dev/null
"$DMSNAP" snapshot create vol snap --cow "$work/snap.cow" --cow-size "$((size_mib * 9 / 8 + 16))M" --run-dir "$RUN" >/dev/null
stop_daemon
cp -a "$work/state" "$work/state.pristine"
cp --sparse=always "$work/snap.cow" "$work/snap.cow.pristine"

# One run's client (libnbd): connects every 2 ms from the moment the launcher is started until a
# 4 KiB read is answered, then issues 4 KiB requests at queue depth 1 for SECONDS from that reply,
# timing each. Writes go to distinct blocks (an odd-multiplier permutation): each a first touch.
# Prints: first-reply-ms daemon-cpu-ms-to-it iops-first-2s iops-last-10s median-µs-first-1000-requests
#         median-µs-first-2s median-µs-last-10s
drive() { # T0_NS PID RW
    /usr/bin/python3 - "$1" "$2" "$3" "nbd+unix:///snap?socket=$RUN/nbd.sock" "$seconds" "$size_mib" <<'PY'
import nbd, os, statistics, sys, time
t0, pid, rw, uri, seconds, size_mib = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
deadline = time.monotonic() + 120
while True:
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
        h.pread(4096, 0)
        break
    except nbd.Error:
        if time.monotonic() > deadline:
            sys.exit("no NBD reply within 120 s")
        time.sleep(0.002)
first_ms = (time.time_ns() - t0) / 1e6
stat = open("/proc/%s/stat" % pid).read()
fields = stat[stat.rindex(")") + 2:].split()
cpu_ms = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
clock = time.perf_counter_ns
blocks = size_mib * 256
block = os.urandom(4096)
start, end, n = clock(), clock() + seconds * 10**9, 0
first, early, steady = [], [], []
steady_from = start + (seconds - 10) * 10**9
while True:
    offset = (n * 2654435761 % blocks) * 4096
    a = clock()
    if rw == "randread":
        h.pread(4096, offset)
    else:
        h.pwrite(block, offset)
    b = clock()
    n += 1
    if b >= end:
        break
    if n <= 1000:
        first.append(b - a)
    if b < start + 2 * 10**9:
        early.append(b - a)
    elif b >= steady_from:
        steady.append(b - a)
h.shutdown()
print("%.0f %.0f %.0f %.0f %.0f %.0f %.0f" % (first_ms, cpu_ms, len(early) / 2, len(steady) / 10,
      statistics.median(first) / 1000, statistics.median(early) / 1000, statistics.median(steady) / 1000))
PY
}

# fresh_run CONFIG WORKLOAD: sets $result to the line drive prints (not in a subshell: the daemon
# it starts must be this shell's, for the EXIT trap)
fresh_run() {
    local config=$1 rw=$2 t0
    rm -rf "$work/state"
    cp -a "$work/state.pristine" "$work/state"
    cp --sparse=always "$work/snap.cow.pristine" "$work/snap.cow"
    t0=$(date +%s%N)
    start_daemon "$config"
    result=$(drive "$t0" "$daemon_pid" "$rw") || { cat "$work/daemon.log" >&2; exit 1; }
    stop_daemon
}

# cli CONFIG ARGS... -> "wall-ms cpu-ms" of one ./dmsnap call (the launcher's bash and the JVM)
cli() {
    local config=$1 t
    shift
    TIMEFORMAT='%3R %3U %3S'
    t=$({ time DMSNAP_JAVA_OPTS="${opts[$config]}" "$DMSNAP" "$@" >/dev/null; } 2>&1)
    awk '{ printf "%.0f %.0f\n", $1 * 1000, ($2 + $3) * 1000 }' <<<"$t"
}

declare -A runs=()
keys=(first startcpu early steady firstlat earlylat steadylat)
for round in $(seq 1 "$rounds"); do
    for config in "${configs[@]}"; do
        for rw in randread randwrite; do
            echo "  round $round: $config $rw" >&2
            fresh_run "$config" "$rw"
            read -r -a values <<<"$result"
            for i in "${!keys[@]}"; do runs[$config.$rw.${keys[$i]}]+=" ${values[$i]}"; done
        done
    done
    # The verbs beside an idle daemon (restored as above); the verb's own cache is what differs.
    rm -rf "$work/state"; cp -a "$work/state.pristine" "$work/state"
    start_daemon new
    await_daemon
    for i in 1 2 3; do
        for config in "${configs[@]}"; do
            read -r wall cpu <<<"$(cli "$config" --version)"
            runs[$config.version.wall]+=" $wall"; runs[$config.version.cpu]+=" $cpu"
            read -r wall cpu <<<"$(cli "$config" ls --run-dir "$RUN")"
            runs[$config.ls.wall]+=" $wall"; runs[$config.ls.cpu]+=" $cpu"
        done
    done
    stop_daemon
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
cell() { echo "$(median "$1") <small>(${1# })</small>"; } # the median, then every round's value

s0=$((seconds - 10))
table="| workload | cache | first reply (ms) | daemon CPU until then (ms) | IOPS 0-2 s | IOPS $s0-$seconds s | IOPS 0-2 s / $s0-$seconds s | median latency, first 1000 requests (µs) | median latency 0-2 s (µs) | median latency $s0-$seconds s (µs) |
|---|---|---|---|---|---|---|---|---|---|"
for rw in randread randwrite; do
    for config in "${configs[@]}"; do
        k=$config.$rw
        table="$table
| 4 KiB $rw$([ "$rw" = randwrite ] && echo ', first touch') | $config | $(cell "${runs[$k.first]}") | $(cell "${runs[$k.startcpu]}") | $(cell "${runs[$k.early]}") | $(cell "${runs[$k.steady]}") | $(ratio "$(median "${runs[$k.early]}")" "$(median "${runs[$k.steady]}")") | $(cell "${runs[$k.firstlat]}") | $(cell "${runs[$k.earlylat]}") | $(cell "${runs[$k.steadylat]}") |"
    done
done
cli="| cache | \`./dmsnap --version\` wall (ms) | its CPU (ms) | \`./dmsnap ls\` wall (ms) | its CPU (ms) |
|---|---|---|---|---|"
for config in "${configs[@]}"; do
    cli="$cli
| $config | $(median "${runs[$config.version.wall]}") | $(median "${runs[$config.version.cpu]}") | $(median "${runs[$config.ls.wall]}") | $(median "${runs[$config.ls.cpu]}") |"
done

kernel=$(uname -r); jdk=$("$DMSNAP_JAVA_HOME/bin/java" -version 2>&1 | head -n 1)
fs=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')
body="Machine: $(nproc) cores, $kernel, **loaded by other test runs** (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end); JDK: $jdk; files on $fs; $(date +%F).
Command: \`bench/warm-start.sh --seconds $seconds --rounds $rounds\`: every run a new \`./dmsnap daemon\` restoring an origin over a sparse $size_mib MiB base and a snapshot \`P 8\` on a fresh sparse COW (\`--cache none\`) from its state directory; a libnbd client connects every 2 ms from the launcher's start until a 4 KiB read is answered (first reply), then sends 4 KiB requests at queue depth 1 for $seconds s. Each cell: the median of $rounds rounds, then every round's value; rounds interleave the caches. new: the launcher's cache (recorded by a daemon under NBD I/O); old: the launcher's cache before issue 18 (trained on \`ls\` finding no daemon, with \`--illegal-native-access=deny\`); none: \`-XX:AOTMode=off\`.

$table

The start of a verb, the median of $((rounds * 3)) calls each, beside an idle daemon (wall time includes the launcher's bash; CPU is user + system of the launcher and the JVM):

$cli

The training, once per build of the jar (and per JDK and launcher): ${train_s} s for \`new\` (\`./dmsnap --version\` in a fresh copy of the built tree, the training included), ${old_train_s} s for \`old\`.

Reading the table. A cold JVM runs the request path in the interpreter and in C1 with profiling until C2 has compiled it. The cache brings the classes loaded and linked (first reply, the daemon's CPU until then) and, with JDK 25 (JEP 515), the method profiles of the training, so that the hot methods are compiled early. \`old\` has neither linked classes nor profiles (\`--illegal-native-access=deny\` turns both off in JDK 25) and starts much like \`none\`. At a high request rate the JIT is done within the first second: the first 1000 requests show the cold path best. On this VM a CPU that goes idle between two requests takes some 50 µs to wake, so a warm daemon answering reads at queue depth 1 waits longer per request (the steady columns) than a cold one whose compiler threads keep the CPUs awake: for reads compare the caches within a column, not the first 2 s with the steady state; first-touch writes, which wait for the disk anyway, show the gap itself."
echo "$body"
bench_record "Warm start (issue 18)" "$body"
