#!/usr/bin/env bash
# NBD over TLS with real clients (issue 16, point 6): a CA and a server certificate made with
# openssl (SAN IP:127.0.0.1 and DNS:localhost, as qemu checks the name it connects to); the
# daemon on TCP with --tls-cert/--tls-key (TLS required on TCP by default). nbdinfo, nbdcopy
# (sha256 round trip) and qemu-img info/convert over TLS; a plain client refused with the
# TLS-required error; nbds+unix:// and plain nbd+unix:// on the Unix socket; a capture of the TCP
# stream (through a recording proxy: tcpdump is not needed) with no plaintext in it, and the
# same capture of a plain session (--tls=on) with it; client certificates with --tls-ca; the
# start-up warning for a listener reachable from the network (in a network namespace of its own).
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK
RUN="$work/run"
d() { "$DMSNAP" "$@" --run-dir "$RUN"; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed (./test.sh installs it as root)"; }
for tool in openssl nbdinfo nbdcopy qemu-img unshare; do need "$tool"; done
sha() { sha256sum "$1" | cut -d' ' -f1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
"$DMSNAP" --version >/dev/null

# ---- certificates -----------------------------------------------------------------------------------
pki="$work/pki"
client="$work/client"      # what libnbd (tls-certificates=DIR) and qemu (tls-creds-x509 dir=DIR) read
mkdir -p "$pki" "$client"
(
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca-key.pem -out ca-cert.pem \
        -days 2 -subj /CN=dmsnap-e2e-ca
    openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=localhost
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem \
        -days 2 -extfile server.ext
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client-key.pem -out client.csr \
        -subj /CN=e2e-client
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial -out client-cert.pem \
        -days 2 -extfile client.ext
    chmod 0600 server-key.pem client-key.pem
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; fail "openssl could not make the certificates"; }
cp "$pki/ca-cert.pem" "$client/"
echo "  certificates: CA, server (RSA, SAN IP:127.0.0.1 DNS:localhost), client (EC) in $pki"

# ---- the daemon, TLS required on TCP ----------------------------------------------------------------
port=$(free_port)
start_daemon "$RUN" --nbd-listen "127.0.0.1:$port" --tls-cert "$pki/server-cert.pem" --tls-key "$pki/server-key.pem"
SOCK="$RUN/nbd.sock"
expect_contains "start-up line" "(TLS require); TLS certificate CN=localhost" "$(cat "$work/daemon.log")"
head -c 64M /dev/urandom >"$work/base.img"
base_sha=$(sha "$work/base.img")
d origin create vol "$work/base.img" >/dev/null
d snapshot create vol snap --cow "$work/snap.cow" --cow-size 80M >/dev/null
tls_uri() { echo "nbds://127.0.0.1:$port/$1?tls-certificates=$client"; }

out=$(nbdinfo --json "$(tls_uri vol)")
expect_eq "nbdinfo over TLS: export size" 67108864 "$(echo "$out" | jq -r '.exports[0]."export-size"')"
expect_eq "nbdinfo over TLS: TLS in use" true "$(echo "$out" | jq -r '.TLS')"
list=$(nbdinfo --list --json "nbds://127.0.0.1:$port/?tls-certificates=$client" | jq -r '[.exports[]."export-name"] | sort | join(",")')
expect_eq "nbdinfo --list over TLS" "snap,vol" "$list"
set +e
out=$(LIBNBD_DEBUG=1 nbdinfo "nbd://127.0.0.1:$port/vol" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "a plain client was served although TLS is required: $out"
# libnbd says NBD_REP_ERR_TLS_REQD as ENOTSUP; the server's sentence is in its debug output.
expect_contains "plain client refused" "server replied with error to opt_go request: Operation not supported" "$out"
expect_contains "plain client told why" "server error message: TLS is required: send STARTTLS first" "$out"
echo "  nbdinfo over TLS: 64 MiB export, TLS=true, --list; plain nbd:// refused: $(echo "$out" | grep -o 'server error message: TLS.*' | head -n 1)"

head -c 32M /dev/urandom >"$work/new.img"
nbdcopy "$work/new.img" "$(tls_uri vol)"
nbdcopy "$(tls_uri vol)" "$work/vol.raw"
expect_eq "nbdcopy over TLS: the origin's first 32 MiB" "$(sha "$work/new.img")" "$(head -c 32M "$work/vol.raw" | sha256sum | cut -d' ' -f1)"
nbdcopy "$(tls_uri snap)" "$work/snap.raw"
expect_eq "nbdcopy over TLS: the snapshot" "$base_sha" "$(sha "$work/snap.raw")"
echo "  nbdcopy over TLS: 32 MiB into the origin and back (sha256 equal), snapshot = base ($base_sha)"

qemu_opts() { echo "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,export=$1,tls-creds=tls0"; }
qemu_tls=(--object "tls-creds-x509,id=tls0,endpoint=client,dir=$client")
expect_contains "qemu-img info over TLS" "virtual size: 64 MiB (67108864 bytes)" \
    "$(qemu-img info "${qemu_tls[@]}" --image-opts "$(qemu_opts snap)")"
qemu-img convert "${qemu_tls[@]}" --image-opts "$(qemu_opts snap)" -O raw "$work/snap-qemu.raw"
expect_eq "qemu-img convert over TLS" "$base_sha" "$(sha "$work/snap-qemu.raw")"
echo "  qemu-img info/convert over TLS (tls-creds-x509): snapshot = base"

# The Unix socket: TLS is the client's choice there.
expect_eq "nbds+unix:// (TLS on the Unix socket)" 67108864 \
    "$(nbdinfo --size "nbds+unix:///snap?socket=$SOCK&tls-certificates=$client")"
expect_eq "nbd+unix:// (plain on the Unix socket)" 67108864 "$(nbdinfo --size "nbd+unix:///snap?socket=$SOCK")"
echo "  Unix socket: nbds+unix:// and nbd+unix:// both served"

# ---- what is on the wire ----------------------------------------------------------------------------
# A proxy that forwards 127.0.0.1:PROXY to the daemon's port and records both directions.
start_proxy() {
    local capture=$1 target=$2
    /usr/bin/python3 - "$capture" "$target" "$work/proxy.port" <<'PY' &
import socket, sys, threading
capture, target, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = open(capture, "wb")
lock = threading.Lock()
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
import os
os.rename(port_file + ".tmp", port_file)
def pump(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            with lock:
                out.write(data)
                out.flush()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
while True:
    a, _ = server.accept()
    b = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(a, b), daemon=True).start()
    threading.Thread(target=pump, args=(b, a), daemon=True).start()
PY
    proxy_pid=$!
    on_exit "kill_job $proxy_pid"
    local _
    for _ in $(seq 1 1200); do [ -f "$work/proxy.port" ] && break; sleep 0.1; done
    proxy_port=$(cat "$work/proxy.port")
    rm -f "$work/proxy.port"
}
marker="dmsnap-e2e-marker-written-over-nbd"
/usr/bin/python3 -c "import sys; sys.stdout.buffer.write(((sys.argv[1] + '\n').encode() * 80000)[:1 << 20])" \
    "$marker" >"$work/marker.img"
start_proxy "$work/tls.capture" "$port"
nbdcopy "$work/marker.img" "nbds://127.0.0.1:$proxy_port/vol?tls-certificates=$client"
kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
tls_bytes=$(stat -c %s "$work/tls.capture")
[ "$tls_bytes" -gt $((1 << 20)) ] || fail "the TLS capture has only $tls_bytes bytes"
if grep -qa "$marker" "$work/tls.capture"; then fail "the marker is in the TLS capture: not encrypted"; fi
nbdcopy "$(tls_uri vol)" "$work/vol2.raw"
expect_eq "the marker written through the proxy" "$(sha "$work/marker.img")" "$(head -c 1M "$work/vol2.raw" | sha256sum | cut -d' ' -f1)"
echo "  capture over TLS: $tls_bytes bytes through the recording proxy, the 1 MiB of marker text not in it"

if grep -E ' (WARN|ERROR) ' "$work/daemon.log"; then fail "the daemon warned about clients that did nothing wrong"; fi
kill "$daemon_pid"; wait "$daemon_pid" || fail "the daemon did not stop cleanly"; daemon_pid=""
# --tls=on: plain clients too (the positive control for the capture: their data is readable on the wire).
port=$(free_port)
start_daemon "$RUN" --nbd-listen "127.0.0.1:$port" --tls-cert "$pki/server-cert.pem" --tls-key "$pki/server-key.pem" --tls=on
d origin create vol "$work/base.img" >/dev/null
start_proxy "$work/plain.capture" "$port"
nbdcopy "$work/marker.img" "nbd://127.0.0.1:$proxy_port/vol"
kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
grep -qa "$marker" "$work/plain.capture" || fail "the plain capture does not show the marker: the capture check proves nothing"
expect_eq "--tls=on: TLS clients too" 67108864 "$(nbdinfo --size "$(tls_uri vol)")"
echo "  --tls=on: a plain nbd:// client served (its capture shows the marker), nbds:// too"
d remove vol
kill "$daemon_pid"; wait "$daemon_pid" || fail "the daemon did not stop cleanly"; daemon_pid=""

# ---- client certificates (--tls-ca) -----------------------------------------------------------------
port=$(free_port)
start_daemon "$RUN" --nbd-listen "127.0.0.1:$port" --tls-cert "$pki/server-cert.pem" --tls-key "$pki/server-key.pem" \
    --tls-ca "$pki/ca-cert.pem"
d origin create vol "$work/base.img" >/dev/null
set +e
out=$(nbdinfo --size "$(tls_uri vol)" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "a client without a certificate was served with --tls-ca"
cp "$pki/client-cert.pem" "$pki/client-key.pem" "$client/"
expect_eq "a client with a certificate of the CA" 67108864 "$(nbdinfo --size "$(tls_uri vol)")"
expect_contains "the daemon names the client" "client CN=e2e-client" "$(cat "$work/daemon.log")"
expect_contains "qemu-img with a client certificate" "virtual size: 64 MiB" \
    "$(qemu-img info "${qemu_tls[@]}" --image-opts "$(qemu_opts vol)")"
d remove vol
kill "$daemon_pid"; wait "$daemon_pid" || fail "the daemon did not stop cleanly"; daemon_pid=""
echo "  --tls-ca: a client without a certificate refused ($(echo "$out" | head -n 1)); nbdinfo and qemu-img with one served"

# ---- a listener reachable from the network is warned about -------------------------------------------
# In a network namespace of its own (only a loopback that is down): 0.0.0.0 reaches nobody here.
: >"$work/daemon.log"
unshare -n "$DMSNAP" daemon --run-dir "$work/run-netns" --nbd-listen 0.0.0.0:10809 2>>"$work/daemon.log" &
daemon_pid=$!
await_daemon "$work/daemon.log" "$work/run-netns" "$daemon_pid"
expect_contains "warning for 0.0.0.0" "WARN dmsnap.nbd.NbdServer - NBD on 0.0.0.0:10809 is reachable from the network; without --tls-cert anyone who can reach it can read and write every device" \
    "$(cat "$work/daemon.log")"
kill "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
echo "  --nbd-listen 0.0.0.0:10809 without TLS: $(grep -o 'NBD on 0.0.0.0:10809 is reachable.*' "$work/daemon.log")"
# Only a port: loopback, and nothing to warn about.
: >"$work/daemon.log"
unshare -n sh -c 'ip link set lo up 2>/dev/null; exec "$0" "$@"' "$DMSNAP" daemon --run-dir "$work/run-netns" \
    --nbd-listen 10809 2>>"$work/daemon.log" &
daemon_pid=$!
await_daemon "$work/daemon.log" "$work/run-netns" "$daemon_pid"
expect_contains "only a port" "and tcp 127.0.0.1:10809 (TLS off)" "$(cat "$work/daemon.log")"
if grep -q "is reachable from the network" "$work/daemon.log"; then fail "a loopback listener was warned about"; fi
kill "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
echo "  --nbd-listen 10809: tcp 127.0.0.1:10809, no warning"
figure access.tls "TLS over TCP (STARTTLS): nbdinfo, nbdcopy (sha256 equal), qemu-img with tls-creds-x509 served; plain clients refused under --tls=require; client certificates enforced with --tls-ca; $tls_bytes bytes captured, the 1 MiB marker not in them (a plain capture shows it); 0.0.0.0 without TLS warned, a bare port bound to loopback"
echo "nbd-tls: OK"
