#!/usr/bin/env bash
# Incremental backup from snapshots with stock clients (issue 19, point 3), the README recipe:
# day 0 a full copy of snapshot s0 with nbdcopy (which skips the holes base:allocation reports);
# then writes to the origin, snapshot s1, and only the extents `nbdinfo --map=dmsnap:changed:s0`
# reports on s1 copied into the backup (by libnbd), which must then equal s1's export byte for
# byte; s0 removed, and the same again for s2 against s1. The dirty extents are checked to be the
# same through `dmsnap changed`, `qemu:dirty-bitmap:s0` (nbdinfo) and qemu-img map with
# x-dirty-bitmap, and to cover every block written. Chunk sizes 4 KiB and 64 KiB, on a 3 GiB
# sparse origin.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
for tool in nbdinfo nbdcopy qemu-img jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (./test.sh installs it as root)"
done
SIZE=$((3 << 30))
start_daemon "$RUN" --nbd-dirty-bitmaps
SOCK="$RUN/nbd.sock"
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }

# The dirty extents of map CONTEXT on EXPORT, "OFFSET LENGTH" lines, merged.
dirty_map() {
    nbdinfo --json --map="$2" "$(uri "$1")" \
        | jq -r '[.[] | select(.type % 2 == 1)] | .[] | "\(.offset) \(.length)"' \
        | awk 'NR > 1 && $1 == end { len += $2; end += $2; next }
               NR > 1 { print start, len } { start = $1; len = $2; end = $1 + $2 } END { if (NR) print start, len }'
}
# The same through qemu-img map: with x-dirty-bitmap qemu reads the bitmap as block status, so a
# dirty extent shows as "data": false.
qemu_dirty_map() {
    qemu-img map --output=json --image-opts \
        "driver=nbd,server.type=unix,server.path=$SOCK,export=$1,x-dirty-bitmap=qemu:dirty-bitmap:$2" \
        | jq -r '.[] | select(.data == false) | "\(.start) \(.length)"' \
        | awk 'NR > 1 && $1 == end { len += $2; end += $2; next }
               NR > 1 { print start, len } { start = $1; len = $2; end = $1 + $2 } END { if (NR) print start, len }'
}

for chunk in 8 128; do
    echo "== chunk size $chunk sectors ($((chunk / 2)) KiB)"
    dir="$work/c$chunk"
    mkdir -p "$dir"
    base="$dir/base.img"
    truncate -s "$SIZE" "$base"
    # Data in a few places, holes elsewhere.
    for at in 0 700 2047 3000; do
        head -c 4M /dev/urandom | dd of="$base" bs=1M seek="$at" conv=notrunc status=none
    done
    d origin create vol "$base" >/dev/null
    d snapshot create vol s0 --cow "$dir/s0.cow" --cow-size 1G --chunk-size "$chunk" >/dev/null

    # Day 0: a full copy; nbdcopy reads only what base:allocation calls data.
    nbdcopy "$(uri s0)" "$dir/backup.img"
    cmp "$base" "$dir/backup.img" || fail "day 0: the full copy of s0 differs from the base"
    holes=$(nbdinfo --json --map "$(uri s0)" | jq '[.[] | select(.type == 3) | .length] | add')
    [ "$holes" -ge $((SIZE - 32 * 1048576)) ] || fail "s0's base:allocation reports only $holes bytes of holes"

    previous=s0
    for day in 1 2; do
        snap=s$day
        # Writes to the origin: some in the holes, some over data, some unaligned to chunks.
        /usr/bin/python3 - "$(uri vol)" "$dir/written.$day" "$chunk$day" <<'PY'
import random, sys
import nbd
uri, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
with open(log, "w") as out:
    for _ in range(150):
        length = rnd.choice([512, 4096, 65536, 300 * 1024])
        offset = rnd.randrange(0, size - length) // 512 * 512
        h.pwrite(rnd.randbytes(length), offset)
        out.write("%d %d\n" % (offset, length))
h.flush()
h.shutdown()
PY
        d snapshot create vol "$snap" --cow "$dir/$snap.cow" --cow-size 1G --chunk-size "$chunk" >/dev/null
        dirty_map "$snap" "dmsnap:changed:$previous" >"$dir/dirty.$day"
        dirty_map "$snap" "qemu:dirty-bitmap:$previous" >"$dir/qemu-nbdinfo.$day"
        qemu_dirty_map "$snap" "$previous" >"$dir/qemu-img.$day"
        d changed "$previous" "$snap" >"$dir/cli.$day"
        cmp -s "$dir/dirty.$day" "$dir/qemu-nbdinfo.$day" || fail "day $day: qemu:dirty-bitmap differs from dmsnap:changed"
        cmp -s "$dir/dirty.$day" "$dir/qemu-img.$day" || fail "day $day: qemu-img map with x-dirty-bitmap differs"
        cmp -s "$dir/dirty.$day" "$dir/cli.$day" || fail "day $day: dmsnap changed differs from the NBD map"
        # Every written block is in a dirty extent; the dirty bytes are at most the written chunks'.
        /usr/bin/python3 - "$dir/written.$day" "$dir/dirty.$day" "$((chunk * 512))" <<'PY' || exit 1
import bisect, sys
written = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
dirty = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
chunk = int(sys.argv[3])
starts = [s for s, _ in dirty]
for off, length in written:
    i = bisect.bisect_right(starts, off) - 1
    if i < 0 or off + length > dirty[i][0] + dirty[i][1]:
        sys.exit("written %d+%d is not inside one dirty extent" % (off, length))
chunks = set()
for off, length in written:
    chunks.update(range(off // chunk, (off + length - 1) // chunk + 1))
total = sum(l for _, l in dirty)
if total > len(chunks) * chunk:
    sys.exit("dirty %d bytes, more than the %d chunks written" % (total, len(chunks)))
print("  %d writes inside %d dirty extents, %d bytes dirty (%d chunks written)" % (len(written), len(dirty), total, len(chunks)))
PY
        # The incremental copy: only the dirty extents, from the new snapshot into the backup.
        /usr/bin/python3 - "$(uri "$snap")" "$dir/dirty.$day" "$dir/backup.img" <<'PY'
import sys
import nbd
uri, dirty, backup = sys.argv[1:4]
h = nbd.NBD()
h.connect_uri(uri)
copied = 0
with open(backup, "r+b") as out:
    for line in open(dirty):
        off, length = map(int, line.split())
        while length:
            n = min(length, 32 << 20)
            out.seek(off)
            out.write(h.pread(n, off))
            off, length, copied = off + n, length - n, copied + n
h.shutdown()
print("  copied %d bytes" % copied)
PY
        nbdcopy "$(uri "$snap")" "$dir/$snap.raw"
        cmp "$dir/$snap.raw" "$dir/backup.img" || fail "day $day: the restored image differs from $snap's export"
        rm -f "$dir/$snap.raw"
        start=$(date +%s%N)
        extents=$(nbdinfo --json --map="dmsnap:changed:$previous" "$(uri "$snap")" | jq length)
        ms=$((($(date +%s%N) - start) / 1000000))
        echo "  day $day: backup equals $snap; map of $((SIZE >> 30)) GiB: $extents extents in $ms ms (nbdinfo)"
        d snapshot remove "$previous" >/dev/null
        nbdinfo --json --map "$(uri vol)" >/dev/null
        if nbdinfo --map="dmsnap:changed:$previous" "$(uri "$snap")" >/dev/null 2>&1; then
            fail "dmsnap:changed:$previous is still offered after $previous was removed"
        fi
        previous=$snap
    done
    d snapshot remove "$previous" >/dev/null
    d remove vol >/dev/null
done
echo "incremental backup: passed"
