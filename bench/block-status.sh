#!/usr/bin/env bash
# Block status and changed blocks over NBD (issue 19, points 3 and 4), in one run:
#  1. The map: a 64 GiB sparse origin and a snapshot s0 with 4 KiB chunks whose COW (written here
#     in the kernel's format) holds 1 M exceptions at random origin chunks; the time to map the
#     origin's changes since s0 (dmsnap:changed:s0) three ways: one libnbd BLOCK_STATUS loop (the
#     server's part: the client adds the extents up in C, not in a Python loop), `nbdinfo --map`
#     and `dmsnap changed --json`; against the time to read the changed data (1 M reads of 4 KiB
#     of data on the disk, caches dropped, libnbd, 16 in flight), the target being under 1 %. And
#     the snapshot's own block status (base:allocation of s0), in a libnbd loop too.
#  2. nbdcopy of a sparse export: a 16 GiB sparse base with 1 GiB of random data in 1 MiB pieces;
#     `nbdcopy URI null:` of dmsnap's snapshot export (a fresh snapshot: every chunk is the
#     origin's, holes and all) against nbdkit file on the same base, caches dropped before each
#     (the daemon reads with O_DIRECT), R interleaved rounds, medians; the target: ≥ 1.0× nbdkit.
# --map-only: part 1's map times only (the libnbd loop, nbdinfo, dmsnap changed), without reading
# the changed data and without part 2, for a quick run; nothing is recorded.
#   bench/block-status.sh [--record] [--dir DIR] [--rounds R] [--map-only]
rounds=3
map_only=0
args=()
for a in "$@"; do
    if [ "$a" = --map-only ]; then map_only=1; else args+=("$a"); fi
done
bench_extra_usage="[--rounds R] [--map-only]"
bench_option() {
    case "$1" in
        --rounds) rounds=$2 ;;
        *) return 1 ;;
    esac
}
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_parse_args ${args[@]+"${args[@]}"}
if [ "$map_only" = 1 ] && [ "$record" = 1 ]; then
    echo "--map-only runs are not recorded: drop --record" >&2
    exit 2
fi
bench_tools nbdinfo nbdcopy nbdkit jq
bench_workdir
DMSNAP="$ROOT/dmsnap"
"$DMSNAP" --version >/dev/null
py=/usr/bin/python3
pids=()
cleanup() {
    for p in "${pids[@]}"; do bench_stop_server "$p"; done
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s%N; }
ms() { echo $((($(now) - $1) / 1000000)); }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

run="$work/run"
bench_start_server dmsnap "$run/control.sock" "$DMSNAP" daemon --run-dir "$run"
pids+=("$server_pid")
d() { "$DMSNAP" "$@" --run-dir "$run"; }
SOCK="$run/nbd.sock"
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }

# ---- 1. the map -------------------------------------------------------------------------------
exceptions=$((1 << 20))
truncate -s 64G "$work/base64.img"
$py - "$work/s0.cow" "$exceptions" $((64 << 30)) "$work/base64.img" "$map_only" <<'PY'
import os, random, struct, sys
path, count, origin_bytes, base, map_only = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
chunk = 4096
epa = chunk // 16
stride = epa + 1
olds = random.Random(19).sample(range(origin_bytes // chunk), count)
areas = (count + epa - 1) // epa + (1 if count % epa == 0 else 0)
with open(path, "wb") as f:
    f.truncate((1 + areas * stride + 1) * chunk)
    f.write(struct.pack("<IIII", 0x70416E53, 1, 1, chunk // 512))
    for k in range((count + epa - 1) // epa):
        entries = olds[k * epa:(k + 1) * epa]
        area = 1 + k * stride
        f.seek(area * chunk)
        f.write(b"".join(struct.pack("<QQ", o, area + 1 + i) for i, o in enumerate(entries)))
# The origin has data where it changed, as a written origin would: reading the changes reads the disk
# (the map does not read it: not with --map-only).
if not map_only:
    block = os.urandom(chunk)
    with open(base, "r+b") as f:
        for o in sorted(olds):
            f.seek(o * chunk)
            f.write(block)
PY
sync
d origin create big "$work/base64.img" >/dev/null
start=$(now)
d snapshot create big s0 --cow "$work/s0.cow" >/dev/null
load_ms=$(ms "$start")
map_loop() { # URI CONTEXT: "median extents flagged-bytes first" of three libnbd BLOCK_STATUS loops over the export
    $py - "$1" "$2" <<'PY'
import sys, time, nbd
from itertools import compress
h = nbd.NBD()
h.add_meta_context(sys.argv[2])
h.connect_uri(sys.argv[1])
size, at, extents, flagged = h.get_size(), 0, 0, 0
# The extents are added up in C (sum, slices, compress), not one by one in Python: a Python loop
# per extent cost about as much as the server's whole map (some 250 ms for 2 M extents), which is
# the client's time, not the server's. A flag is 0 or has bit 0 set in both contexts (dirty; hole).
def seen(context, offset, entries, err):
    global at, extents, flagged
    lengths = entries[0::2]
    at += sum(lengths)
    extents += len(lengths)
    flagged += sum(compress(lengths, entries[1::2]))
    return 0
# Three maps, the daemon warm after the first (a long-lived daemon is): the median.
times = []
for _ in range(3):
    at, extents, flagged = 0, 0, 0
    t = time.perf_counter()
    while at < size:
        h.block_status(min(size - at, (1 << 32) - 4096), at, seen)
    times.append((time.perf_counter() - t) * 1000)
print("%d %d %d %d" % (sorted(times)[1], extents, flagged, times[0]))
PY
}
read -r map_ms map_extents map_dirty first_map_ms <<<"$(map_loop "$(uri big)" dmsnap:changed:s0)"
# The snapshot's own block status: its exceptions are its data, the rest is the origin's.
read -r alloc_ms alloc_extents alloc_holes first_alloc_ms <<<"$(map_loop "$(uri s0)" base:allocation)"
rate=$(awk -v n="$map_extents" -v m="$map_ms" 'BEGIN { printf "%.1f", n / m / 1000 }')
start=$(now)
nbdinfo --json --map=dmsnap:changed:s0 "$(uri big)" >"$work/map.json"
nbdinfo_ms=$(ms "$start")
nbdinfo_extents=$(jq length "$work/map.json")
start=$(now)
d changed --json s0 >"$work/changed.json"
cli_ms=$(ms "$start")
cli_extents=$(jq '.extents | length' "$work/changed.json")
rm -f "$work/map.json" "$work/changed.json"
if [ "$map_only" = 1 ]; then
    echo "Map of dmsnap:changed:s0 (64 GiB origin, $exceptions random exceptions, 4 KiB chunks; COW load $load_ms ms):"
    echo "  libnbd BLOCK_STATUS loop: $map_extents extents ($rate M extents/s), median of 3 $map_ms ms (the first: $first_map_ms ms)"
    echo "  base:allocation of the snapshot s0, libnbd loop: $alloc_extents extents, median of 3 $alloc_ms ms (the first: $first_alloc_ms ms)"
    echo "  nbdinfo --json --map: $nbdinfo_extents extents, $nbdinfo_ms ms"
    echo "  dmsnap changed --json: $cli_extents extents, $cli_ms ms"
    exit 0
fi
echo 3 >/proc/sys/vm/drop_caches
read_ms=$($py - "$(uri big)" <<'PY'
import sys, time, nbd
h = nbd.NBD()
h.add_meta_context("dmsnap:changed:s0")
h.connect_uri(sys.argv[1])
size, at, dirty = h.get_size(), 0, []
def seen(context, offset, entries, err):
    global at
    for i in range(0, len(entries), 2):
        if entries[i + 1] & 1:
            dirty.append((at, entries[i]))
        at += entries[i]
    return 0
while at < size:
    h.block_status(min(size - at, (1 << 32) - 4096), at, seen)
pieces = [(o + k, 4096) for o, n in dirty for k in range(0, n, 4096)]
buf = nbd.Buffer(4096)
failed = []
def done(err):
    if err.value:
        failed.append(err.value)
    return 1  # retire the command
t = time.perf_counter()
i = 0
while i < len(pieces) or h.aio_in_flight() > 0:
    while i < len(pieces) and h.aio_in_flight() < 16:
        h.aio_pread(buf, pieces[i][0], completion=done)
        i += 1
    h.poll(-1)
if failed:
    sys.exit("%d reads failed" % len(failed))
print("%d" % ((time.perf_counter() - t) * 1000))
PY
)
map_pct=$(awk -v m="$map_ms" -v r="$read_ms" 'BEGIN { printf "%.2f", 100 * m / r }')
d remove s0 >/dev/null
d remove big >/dev/null
rm -f "$work/s0.cow" "$work/base64.img"

# ---- 2. nbdcopy of a sparse export -------------------------------------------------------------
base="$work/base16.img"
truncate -s 16G "$base"
$py - "$base" <<'PY'
import os, random, sys
r = random.Random(4)
with open(sys.argv[1], "r+b") as f:
    for at in sorted(r.sample(range(16 * 1024), 1024)):
        f.seek(at << 20)
        f.write(os.urandom(1 << 20))
PY
sync
d origin create vol "$base" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 2G >/dev/null
nbdkit_sock="$work/nbdkit.sock"
bench_start_server nbdkit "$nbdkit_sock" nbdkit -f -U "$nbdkit_sock" file "$base"
pids+=("$server_pid")
declare -A times=([dmsnap-snap]="" [dmsnap-origin]="" [nbdkit-file]="")
copy() { # NAME URI
    sync
    echo 3 >/proc/sys/vm/drop_caches
    local start
    start=$(now)
    nbdcopy "$2" null:
    times[$1]+="$(ms "$start") "
}
for round in $(seq 1 "$rounds"); do
    order=(dmsnap-snap nbdkit-file dmsnap-origin)
    for _ in $(seq 2 "$round"); do order=("${order[@]:1}" "${order[0]}"); done
    for name in "${order[@]}"; do
        case $name in
            dmsnap-snap) copy "$name" "$(uri snap)" ;;
            dmsnap-origin) copy "$name" "$(uri vol)" ;;
            nbdkit-file) copy "$name" "nbd+unix:///?socket=$nbdkit_sock" ;;
        esac
    done
done
# shellcheck disable=SC2086
snap_ms=$(median ${times[dmsnap-snap]})
# shellcheck disable=SC2086
origin_ms=$(median ${times[dmsnap-origin]})
# shellcheck disable=SC2086
nbdkit_ms=$(median ${times[nbdkit-file]})
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

body="Command: \`bench/block-status.sh --rounds $rounds\` ($(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d)).

**The map** (64 GiB sparse origin, snapshot s0 with 4 KiB chunks and $exceptions exceptions at random origin chunks; loading the COW: $load_ms ms):

| how | extents | time |
|---|---|---|
| libnbd BLOCK_STATUS loop (dmsnap:changed:s0 of the origin), median of 3 (the first: $first_map_ms ms) | $map_extents ($rate M extents/s) | $map_ms ms |
| libnbd BLOCK_STATUS loop (base:allocation of the snapshot s0), median of 3 (the first: $first_alloc_ms ms) | $alloc_extents | $alloc_ms ms |
| \`nbdinfo --json --map=dmsnap:changed:s0\` | $nbdinfo_extents | $nbdinfo_ms ms |
| \`dmsnap changed --json s0\` | $cli_extents | $cli_ms ms |
| reading the changed data: $((map_dirty >> 20)) MiB in 4 KiB reads from the disk, 16 in flight (libnbd) | | $read_ms ms |

The map costs $map_pct % of reading the changed data (target: under 1 %).

**nbdcopy to null: of a 16 GiB sparse base with 1 GiB of data** (1024 random MiB), caches dropped before each copy, medians of $rounds interleaved rounds:

| export | time | vs nbdkit file |
|---|---|---|
| nbdkit file | $nbdkit_ms ms | 1.00× |
| dmsnap snapshot (fresh: the origin's holes) | $snap_ms ms | $(ratio "$snap_ms" "$nbdkit_ms")× |
| dmsnap origin | $origin_ms ms | $(ratio "$origin_ms" "$nbdkit_ms")× |

Runs per export: dmsnap snapshot ${times[dmsnap-snap]}ms; origin ${times[dmsnap-origin]}ms; nbdkit ${times[nbdkit-file]}ms."
echo "$body"
bench_record "Block status and changed blocks (issue 19)" "$body"
