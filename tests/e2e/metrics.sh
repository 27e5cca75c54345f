#!/usr/bin/env bash
# Prometheus metrics of the real daemon (--metrics 127.0.0.1:PORT), read with curl: device
# series for an origin and a snapshot made with the LVM-style commands, the snapshot's COW usage
# and state as status shows them, copier and commit series; a rename moves the device's series,
# a remove drops them; a taken port and a malformed value fail in one line; SIGTERM closes it.
# I/O goes through the NBD export with nbdsh: 3 writes of 4 KiB to new chunks of the origin
# (3 copies, 3 commits), 2 reads of the snapshot, a flush.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
scrape() { curl -sS --max-time 60 "http://127.0.0.1:$port/metrics"; }
# series NAME{LABELS}: the value of one series in the last scrape, or nothing
series() { awk -v k="$1" '$1 == k { print $2 }' <<<"$metrics"; }

"$DMSNAP" --version >/dev/null
port=$(free_port)
start_daemon "$RUN" --metrics "127.0.0.1:$port"
expect_contains "start logged" "serving metrics at http://127.0.0.1:$port/metrics" "$(cat "$E2E_WORK/daemon.log")"

headers=$(curl -sS -o /dev/null -D - "http://127.0.0.1:$port/metrics")
expect_contains "Prometheus text format" "text/plain; version=0.0.4" "$headers"

truncate -s 8M "$work/base.img"
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol vol-snap --cow "$work/snap.cow" --cow-size 4M >/dev/null
expect_eq "snapshot status" "0 16384 snapshot 16/8192 16" "$(d status vol-snap)"

metrics=$(scrape)
for dev in vol vol-snap; do
    for name in reads writes read_bytes written_bytes flushes discards discarded_bytes io_errors; do
        expect_eq "dmsnap_device_${name}_total of $dev" "0.0" "$(series "dmsnap_device_${name}_total{device=\"$dev\"}")"
    done
done
expect_eq "allocated sectors" "16.0" "$(series 'dmsnap_snapshot_cow_allocated_sectors{device="vol-snap"}')"
expect_eq "total sectors" "8192.0" "$(series 'dmsnap_snapshot_cow_total_sectors{device="vol-snap"}')"
expect_eq "metadata sectors" "16.0" "$(series 'dmsnap_snapshot_cow_metadata_sectors{device="vol-snap"}')"
expect_eq "state valid" "1.0" "$(series 'dmsnap_snapshot_state{device="vol-snap",state="valid"}')"
expect_eq "state invalid" "0.0" "$(series 'dmsnap_snapshot_state{device="vol-snap",state="invalid"}')"
expect_eq "the origin has no COW state" "" "$(series 'dmsnap_snapshot_state{device="vol",state="valid"}')"
expect_eq "copies" "0.0" "$(series dmsnap_chunk_copies_total)"
expect_eq "copy write errors" "0.0" "$(series 'dmsnap_chunk_copy_errors_total{op="write"}')"
expect_eq "commits" "0" "$(series 'dmsnap_exception_commit_seconds_count{store="persistent"}')"
expect_contains "commit histogram" '# TYPE dmsnap_exception_commit_seconds histogram' "$metrics"

PATH="/usr/bin:$PATH" nbdsh -u "nbd+unix:///vol?socket=$RUN/nbd.sock" -c '
for i in range(3):
    h.pwrite(b"m" * 4096, i * 65536)
h.flush()
'
PATH="/usr/bin:$PATH" nbdsh -u "nbd+unix:///vol-snap?socket=$RUN/nbd.sock" -c '
assert h.pread(4096, 0) == bytes(4096)
assert h.pread(4096, 65536) == bytes(4096)
'
metrics=$(scrape)
expect_eq "origin writes" "3.0" "$(series 'dmsnap_device_writes_total{device="vol"}')"
expect_eq "origin bytes written" "12288.0" "$(series 'dmsnap_device_written_bytes_total{device="vol"}')"
expect_eq "origin flushes" "1.0" "$(series 'dmsnap_device_flushes_total{device="vol"}')"
expect_eq "snapshot reads" "2.0" "$(series 'dmsnap_device_reads_total{device="vol-snap"}')"
expect_eq "snapshot bytes read" "8192.0" "$(series 'dmsnap_device_read_bytes_total{device="vol-snap"}')"
expect_eq "copies after 3 first writes" "3.0" "$(series dmsnap_chunk_copies_total)"
expect_eq "commits after 3 first writes" "3" "$(series 'dmsnap_exception_commit_seconds_count{store="persistent"}')"
expect_eq "allocated sectors after 3 copies" "40.0" "$(series 'dmsnap_snapshot_cow_allocated_sectors{device="vol-snap"}')"
expect_eq "status agrees" "0 16384 snapshot 40/8192 16" "$(d status vol-snap)"

# The COW grows: the next scrape shows the new size (computed at scrape time, not polled).
truncate -s 8M "$work/snap.cow"
metrics=$(scrape)
expect_eq "total sectors after growing the COW" "16384.0" "$(series 'dmsnap_snapshot_cow_total_sectors{device="vol-snap"}')"

d rename vol-snap renamed
metrics=$(scrape)
expect_eq "renamed device's series" "40.0" "$(series 'dmsnap_snapshot_cow_allocated_sectors{device="renamed"}')"
case "$metrics" in *'device="vol-snap"'*) fail "the old name is still scraped" ;; esac
d snapshot remove renamed >/dev/null
metrics=$(scrape)
case "$metrics" in *'device="renamed"'*) fail "a removed device is still scraped" ;; esac
expect_eq "the origin stays" "3.0" "$(series 'dmsnap_device_writes_total{device="vol"}')"

# A second daemon on the port already taken: refused in one line, exit status 1.
set +e
err=$("$DMSNAP" daemon --run-dir "$work/run2" --metrics "127.0.0.1:$port" 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status for a taken port" 1 "$rc"
expect_eq "taken port" "dmsnap: metrics on 127.0.0.1:$port: Address already in use" "$(grep -v '^\[' <<<"$err")"
set +e
err=$("$DMSNAP" daemon --run-dir "$work/run2" --metrics ":$port" 2>&1 >/dev/null); rc=$?
set -e
expect_eq "exit status for a malformed address" 2 "$rc"
expect_contains "malformed address" "names no host (for every interface write 0.0.0.0:$port)" "$err"

kill -TERM "$daemon_pid"; wait "$daemon_pid"; rc=$?; daemon_pid=""
expect_eq "exit status after SIGTERM" 0 "$rc"
if curl -s --max-time 5 "http://127.0.0.1:$port/metrics" >/dev/null; then
    fail "/metrics still answers after the daemon stopped"
fi
echo "metrics: ok"
