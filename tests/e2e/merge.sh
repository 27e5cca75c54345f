#!/usr/bin/env bash
# snapshot merge through the real daemon: a kernel COW merged in the foreground with --json
# progress lines (the origin ends as the kernel's snapshot view, its table linear); a large COW
# of single-chunk runs whose merge waits while the origin is open (a stacked device), starts
# when it is closed, survives a kill -9 of the daemon in the middle (the restored snapshot-merge
# table continues from the COW) and is finished by the restarted daemon: origin sha256 == the
# snapshot view's, the table snapshot-origin while another snapshot remains.
# The middle is made, not caught: that origin is a FUSE file (nbdfuse) over nbdkit serving it with
# tests/e2e/nbdkit/gated_file.py, whose write number $HOLD waits at a gate until the test opens it,
# so the daemon is killed with a merge step's write in flight, however fast the machine merges.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"; STATE="$work/state"
E2E_KILL=9
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
start() { start_daemon "$RUN" --state-dir "$STATE"; }
"$DMSNAP" --version >/dev/null

# 1. The basic fixture: the kernel's final origin and COW; its snapshot view has this sha256.
fixtures="$E2E_ROOT/store/src/test/resources/kernel-cow/basic/final"
gunzip -c "$fixtures/origin.img.gz" >"$work/k-origin.img"
gunzip -c "$fixtures/cow.img.gz" >"$work/k-cow.img"
kview=dab91b7720293d7a4d1d094fe09325605f017a4d34e58c28ce04a6c7003cd09f
expect_contains "offline view of the kernel COW" "snapshot view sha256 $kview" \
    "$("$DMSNAP" cow read --origin "$work/k-origin.img" --cow "$work/k-cow.img" --out "$work/k-view.raw")"

# 2. A large COW (chunk 8) in the kernel's layout: 3000 exceptions of every other origin chunk
#    (each its own run: one merge step, two flushes each), random data, over a sparse origin.
python3 - "$work/big-origin.img" "$work/big-cow.img" >"$work/big.sha" <<'EOF'
import hashlib, os, struct, sys
origin_path, cow_path = sys.argv[1], sys.argv[2]
chunk, n, origin_chunks = 4096, 3000, 16384
epa = 256
with open(origin_path, "wb") as o:
    o.truncate(origin_chunks * chunk)
    o.seek(1 * chunk); o.write(b"\x11" * chunk)          # a chunk without exception, with data
view = {}
with open(cow_path, "wb") as c:
    areas = n // epa + 1
    c.truncate((2 + n + areas + 8) * chunk)
    c.write(struct.pack("<IIII", 0x70416e53, 1, 1, 8))
    new, done = 2, 0
    for k in range(areas):
        entries = b""
        for i in range(epa):
            if done == n:
                break
            if new % (epa + 1) == 1:
                new += 1
            data = os.urandom(chunk)
            c.seek(new * chunk); c.write(data)
            view[2 * done] = data
            entries += struct.pack("<QQ", 2 * done, new)
            new += 1; done += 1
        c.seek((1 + k * (epa + 1)) * chunk); c.write(entries.ljust(chunk, b"\0"))
h, before = hashlib.sha256(), hashlib.sha256()
zero = b"\0" * chunk
for i in range(origin_chunks):
    old = b"\x11" * chunk if i == 1 else zero
    h.update(view.get(i, old))
    before.update(old)
# the snapshot's status: the kernel's allocation pointer, the COW size, header + areas 0..k
print(h.hexdigest(), before.hexdigest(), "%d/%d %d" % (new * 8, (2 + n + areas + 8) * 8, (k + 2) * 8))
EOF
read -r bview borig busage <"$work/big.sha"
expect_contains "offline view of the big COW" "snapshot view sha256 $bview" \
    "$("$DMSNAP" cow read --origin "$work/big-origin.img" --cow "$work/big-cow.img" --out "$work/big-view.raw")"
rm -f "$work/big-view.raw" "$work/k-view.raw"

start
d origin create kvol "$work/k-origin.img" >/dev/null
d snapshot create kvol ksnap --cow "$work/k-cow.img" >/dev/null
expect_eq "kernel COW as a snapshot" "0 16384 snapshot 104/8192 16" "$(d status ksnap)"
out=$(d snapshot merge ksnap --json)
echo "$out" | head -n 3 | sed 's/^/  /'
expect_contains "merge started" '"state":"merging"' "$(echo "$out" | head -n 1)"
expect_contains "progress lines end finished" '"state":"finished"' "$(echo "$out" | tail -n 1)"
expect_contains "progress lines carry the rate" '"mibPerSecond"' "$(echo "$out" | tail -n 1)"
expect_eq "the snapshot device is gone, kvol is linear" "kvol: 0 16384 linear $(readlink -f "$work/k-origin.img") 0" \
    "$(d table)"
expect_contains "merge status after" "kvol: merge of ksnap finished" "$(d snapshot merge --status)"
expect_eq "the origin is the kernel's snapshot view" "$kview" "$(sha256sum "$work/k-origin.img" | cut -d' ' -f1)"

# 3. The big one, with a second snapshot that must keep its point in time.
borigin=$(readlink -f "$work/big-origin.img")
gated=""
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
    echo "  SKIPPED the kill in the middle of the merge below: needs root and /dev/fuse (FUSE)"
else
    command -v nbdfuse >/dev/null || fail "nbdfuse is not installed (libnbd-bin; ./test.sh installs it as root)"
    nbdkit python --version >/dev/null 2>&1 ||
        fail "nbdkit's python plugin is not installed (nbdkit-plugin-python; ./test.sh installs it as root)"
    gated=1
    HOLD=1000 # of the merge's 3000 steps, each one origin write
    gate=$work/gate
    mkdir "$gate" "$work/fuse"
    mkfifo "$gate/release"
    nbdkit -f --exit-with-parent --log=stderr -U "$gate/sock" python "$E2E_ROOT/tests/e2e/nbdkit/gated_file.py" \
        file="$work/big-origin.img" dir="$gate" hold=$HOLD 2>>"$work/nbdkit.log" &
    nbdkit_pid=$!
    on_exit "umount -l '$work/fuse'"
    # On a failure with the gate shut, nbdkit goes first: the daemon's write then fails, not waits.
    on_exit "kill_job -9 $nbdkit_pid"
    for _ in $(seq 1 1200); do # a loaded machine may take long to start nbdkit and Python
        [ -S "$gate/sock" ] && break
        running_job "$nbdkit_pid" || fail "nbdkit did not start: $(cat "$work/nbdkit.log")"
        sleep 0.1
    done
    nbdfuse "$work/fuse/origin.img" "nbd+unix:///?socket=$gate/sock" 2>>"$work/nbdfuse.log" &
    for _ in $(seq 1 1200); do # nbdfuse mounts in the background
        [ -f "$work/fuse/origin.img" ] && break
        sleep 0.1
    done
    [ -f "$work/fuse/origin.img" ] || fail "nbdfuse did not mount its file: $(cat "$work/nbdfuse.log")"
    borigin=$(readlink -f "$work/fuse/origin.img")
fi
bsize=$((16384 * 8))
d origin create vol "$borigin" >/dev/null
d snapshot create vol vol-snap --cow "$work/big-cow.img" >/dev/null
d snapshot create vol other --cow "$work/other.cow" --cow-size 200M >/dev/null
expect_eq "big snapshot" "0 $bsize snapshot $busage" "$(d status vol-snap)"
d create upper --table "0 $bsize linear dm:vol 0"
out=$(d snapshot merge vol-snap)
expect_contains "deferred while open" "Can't merge over open origin volume." "$out"
expect_contains "deferred until" "Merging of snapshot vol-snap will occur on next activation of vol" "$out"
expect_contains "waiting" "vol: merge of vol-snap waits for the next activation of vol (open by 1)" "$(d snapshot merge --status vol)"
expect_eq "still snapshot-origin" "0 $bsize snapshot-origin $borigin" "$(d table vol)"
d remove upper   # nothing holds vol open now: the daemon starts the merge
initial=${busage%%/*}
# gated_logs: what the daemon, nbdkit and nbdfuse said, for a failure with the gate in the way.
gated_logs() { tail -n 20 "$work/daemon.log" "$work/nbdkit.log" "$work/nbdfuse.log" 2>&1; }
if [ -n "$gated" ]; then
    for _ in $(seq 1 6000); do # until the merge's write number $HOLD waits at the gate
        [ -e "$gate/held" ] && break
        running_job "$daemon_pid" && running_job "$nbdkit_pid" ||
            fail "the daemon or nbdkit ended before the merge's write number $HOLD: $(gated_logs)"
        ! grep -q "shutting down merge" "$work/daemon.log" || fail "the merge failed: $(gated_logs)"
        sleep 0.1
    done
    [ -e "$gate/held" ] || fail "the merge's write number $HOLD did not come: $(gated_logs)"
    killed=$(timeout 120 "$DMSNAP" status vol --run-dir "$RUN") || fail "status with the gate shut: $(gated_logs)"
    alloc=$(echo "$killed" | awk '$3 == "snapshot-merge" { split($4, a, "/"); print a[1] }')
    meta=$(echo "$killed" | awk '{ print $5 }')
    [ -n "$alloc" ] && [ "$alloc" -lt "$initial" ] && [ "$alloc" -gt "$meta" ] ||
        fail "a merge step's write waits at the gate, but the merge does not show under way: [$killed] (allocated $initial before)"
    # That write holds the daemon in the kernel until it is answered: the daemon dies once the gate
    # opens, and the write lands after the kill, as a disk's would.
    kill -9 "$daemon_pid"
    timeout 120 bash -c 'echo open >"$1"' _ "$gate/release" || fail "nobody waits at the gate any more: $(gated_logs)"
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
    echo "  killed the daemon at: $killed"
    start
    table=$(d table vol)
    case "$table" in
        *snapshot-merge*) ;;
        # the restored merge may have finished before this call on a fast disk and a slow CPU
        *) expect_contains "restored as snapshot-merge (finished since)" "finished" "$(d snapshot merge --status vol)" ;;
    esac
    expect_contains "the merge was taken up" "vol: taking up the merge of vol-snap (started)" "$(cat "$work/daemon.log")"
    json=$(d snapshot merge --status vol --json)
    expect_contains "status json" '"snapshot" : "vol-snap"' "$json"
fi
deadline=$((SECONDS + 300))
while [ "$SECONDS" -lt "$deadline" ]; do
    st=$(d snapshot merge --status vol 2>&1 || true)
    case "$st" in *finished*) break ;; esac
    sleep 0.1
done
expect_contains "the merge finished" "vol: merge of vol-snap finished; vol is now: 0 $bsize snapshot-origin" "$st"
expect_eq "vol keeps snapshot-origin for the other snapshot" "0 $bsize snapshot-origin $borigin" \
    "$(d table vol)"
expect_eq "devices" "$(printf "kvol\nother\nvol")" "$(d ls | cut -f1)"
expect_contains "the other snapshot is intact" "0 $bsize snapshot " "$(d status other)"
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
expect_eq "the origin is the snapshot view" "$bview" "$(sha256sum "$work/big-origin.img" | cut -d' ' -f1)"
expect_contains "the other snapshot still reads the old origin" "snapshot view sha256 $borig" \
    "$("$DMSNAP" cow read --origin "$work/big-origin.img" --cow "$work/other.cow" --out "$work/other.raw")"
echo "merge: ok"
