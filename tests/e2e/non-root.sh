#!/usr/bin/env bash
# The daemon as an ordinary user (issue 16, point 6): throwaway users made here and removed at the
# end (useradd -r -M): DAEMON runs the daemon on a directory of its own under /tmp with
# --nbd-group GROUP, MEMBER is in GROUP, OTHER is in nothing. Shows what the daemon can do (an
# origin and a snapshot on its own files, served over NBD) and cannot (a root-owned 0600 file, a
# loop device of group disk: Permission denied, exit 5); who may use its sockets: root (both),
# MEMBER (the NBD socket only), OTHER (neither: the kernel refuses it; and with CAP_DAC_OVERRIDE,
# which gets it past the file modes, the daemon refuses it by SO_PEERCRED, says why and logs it).
# Runs only as root.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ]; then
    echo "non-root: skipped: it needs root to make throwaway users"
    exit 0
fi
for tool in useradd userdel groupadd groupdel setpriv losetup nbdinfo nbdcopy; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
"$DMSNAP" --version >/dev/null   # builds the jar (as root) if needed: the users only read it

DAEMON=dmsnap-e2e-daemon
MEMBER=dmsnap-e2e-member
OTHER=dmsnap-e2e-other
GROUP=dmsnap-e2e-nbd
remove_accounts() {
    local u
    for u in "$DAEMON" "$MEMBER" "$OTHER"; do
        if getent passwd "$u" >/dev/null; then userdel "$u" 2>/dev/null || true; fi
    done
    if getent group "$GROUP" >/dev/null; then groupdel "$GROUP" 2>/dev/null || true; fi
}
remove_accounts   # left by an earlier run that was killed
groupadd -r "$GROUP"
useradd -r -M -d /nonexistent -s /usr/sbin/nologin -G "$GROUP" "$DAEMON"
useradd -r -M -d /nonexistent -s /usr/sbin/nologin -G "$GROUP" "$MEMBER"
useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$OTHER"
on_exit remove_accounts

# as USER COMMAND...: run a command as USER with its groups from the group database (no fork: the
# pid is the command's); as_dac USER ...: the same with CAP_DAC_OVERRIDE, which passes file modes.
as() {
    local user=$1; shift
    setpriv --reuid="$user" --regid="$user" --init-groups env HOME=/nonexistent USER="$user" LOGNAME="$user" "$@"
}
as_dac() {
    local user=$1; shift
    setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=+dac_override --ambient-caps=+dac_override \
        env HOME=/nonexistent USER="$user" LOGNAME="$user" "$@"
}
if ! out=$(as "$DAEMON" "$DMSNAP" --version 2>&1); then
    echo "non-root: skipped: $DAEMON cannot run $DMSNAP (is the checkout or the JDK readable by every user?): $out"
    exit 0
fi

home=$(mktemp -d /tmp/dmsnap-nonroot.XXXXXX)
on_exit "rm -rf '$home'"
chown "$DAEMON:$DAEMON" "$home"
chmod 0755 "$home"         # others may look in; the run directory inside is the daemon's
RUN="$home/run"
LOG="$home/daemon.log"
ud() { as "$DAEMON" "$DMSNAP" "$@" --run-dir "$RUN"; }       # a client run by the daemon's user
rd() { "$DMSNAP" "$@" --run-dir "$RUN"; }                    # the same run by root
sha() { sha256sum "$1" | cut -d' ' -f1; }

as "$DAEMON" sh -c "head -c 16M /dev/urandom >'$home/base.img'"
base_sha=$(sha "$home/base.img")
# Not through the function: backgrounded, it would be a subshell, and $! not the daemon's pid.
setpriv --reuid="$DAEMON" --regid="$DAEMON" --init-groups env HOME=/nonexistent USER="$DAEMON" LOGNAME="$DAEMON" \
    "$DMSNAP" daemon --run-dir "$RUN" --nbd-group "$GROUP" 2>>"$LOG" &
daemon_pid=$!
await_daemon "$LOG" "$RUN" "$daemon_pid"
# Before its user is removed (userdel refuses a user with processes), whatever happens.
on_exit 'if [ -n "$daemon_pid" ]; then kill_job "$daemon_pid"; wait "$daemon_pid"; daemon_pid=""; fi'
expect_eq "the daemon's user" "$DAEMON" "$(ps -o user= -p "$daemon_pid")"
expect_eq "run directory mode and group" "710 $DAEMON $GROUP" "$(stat -c '%a %U %G' "$RUN")"
expect_eq "control.sock" "600 $DAEMON" "$(stat -c '%a %U' "$RUN/control.sock")"
expect_eq "nbd.sock" "660 $DAEMON $GROUP" "$(stat -c '%a %U %G' "$RUN/nbd.sock")"
echo "  the daemon runs as $DAEMON (pid $daemon_pid): $RUN 0710 $GROUP, control.sock 0600, nbd.sock 0660 $GROUP"

# ---- what it can do: its own files ------------------------------------------------------------------
ud origin create vol "$home/base.img" >/dev/null
ud snapshot create vol snap --cow "$home/snap.cow" --cow-size 24M >/dev/null
as "$DAEMON" sh -c "head -c 4M /dev/urandom >'$home/new.img'"
as "$DAEMON" nbdcopy "$home/new.img" "nbd+unix:///vol?socket=$RUN/nbd.sock"
as "$DAEMON" nbdcopy "nbd+unix:///snap?socket=$RUN/nbd.sock" "$home/snap.raw"
expect_eq "the snapshot after writes to the origin" "$base_sha" "$(sha "$home/snap.raw")"
expect_contains "snapshot status" "snapshot" "$(ud status snap)"
echo "  as $DAEMON: origin and snapshot on its own files; 4 MiB written to the origin over NBD; snapshot = base"

# ---- what it cannot do: files and devices it has no access to ----------------------------------------
head -c 1M /dev/zero >"$home/secret.img"
chmod 0600 "$home/secret.img"          # root's
set +e
out=$(ud create secret --table "0 2048 linear $home/secret.img 0" 2>&1); rc=$?
set -e
expect_eq "a root-owned 0600 file: exit status" 5 "$rc"
expect_contains "a root-owned 0600 file" "Permission denied" "$out"
echo "  cannot use root's 0600 file: exit $rc: $(echo "$out" | tr '\n' ' ')"
set +e
out=$(ud create snap2 --table "0 32768 snapshot $home/base.img $home/secret.img P 8" 2>&1); rc=$?
set -e
expect_eq "root's 0600 file as a COW: exit status" 5 "$rc"
expect_contains "root's 0600 file as a COW" "Cannot get COW device" "$out"
echo "  cannot use it as a COW either: exit $rc: $(echo "$out" | tr '\n' ' ')"
head -c 4M /dev/zero >"$home/loop.img"
loop_attach "$home/loop.img" || fail "cannot attach a loop device"
loop=$LOOP
set +e
out=$(ud create onloop --table "0 2048 linear $loop 0" 2>&1); rc=$?
set -e
expect_eq "$loop (root:disk 0660): exit status" 5 "$rc"
expect_contains "$loop" "Permission denied" "$out"
echo "  cannot use $loop ($(stat -c '%U:%G %a' "$loop"), $DAEMON not in its group): exit $rc: $(echo "$out" | tr '\n' ' ')"
expect_eq "nothing was made by the refused creates" "snap vol" "$(ud ls | awk '{print $1}' | sort | tr '\n' ' ' | sed 's/ $//')"

# ---- who may use its sockets -------------------------------------------------------------------------
expect_contains "root at the control socket" "vol" "$(rd ls)"
expect_eq "root at the NBD socket" 16777216 "$(nbdinfo --size "nbd+unix:///snap?socket=$RUN/nbd.sock")"
echo "  root: control socket and NBD socket served"

expect_eq "$MEMBER at the NBD socket" 16777216 "$(as "$MEMBER" nbdinfo --size "nbd+unix:///snap?socket=$RUN/nbd.sock")"
set +e
out=$(as "$MEMBER" "$DMSNAP" ls --run-dir "$RUN" 2>&1); rc=$?
set -e
expect_eq "$MEMBER at the control socket: exit status" 5 "$rc"
expect_eq "$MEMBER at the control socket" \
    "dmsnap: cannot use the daemon's control socket $RUN/control.sock as user $MEMBER: Permission denied (only root and the daemon's user may)" "$out"
echo "  $MEMBER (in $GROUP): NBD socket served; control socket refused by the kernel: exit $rc: $out"

set +e
out=$(as "$OTHER" "$DMSNAP" ls --run-dir "$RUN" 2>&1); rc=$?
set -e
expect_eq "$OTHER at the control socket: exit status" 5 "$rc"
refused_line="dmsnap: cannot use the daemon's control socket $RUN/control.sock as user $OTHER: Permission denied (only root and the daemon's user may)"
expect_eq "$OTHER at the control socket" "$refused_line" "$out"
echo "  $OTHER: control socket refused by the kernel: exit $rc: $out"
# The LVM-style verbs say the same, with the same status, and stop before they make anything.
set +e
out=$(as "$OTHER" "$DMSNAP" snapshot create vol other-snap --cow "$home/other.cow" --cow-size 4M --run-dir "$RUN" 2>&1); rc=$?
set -e
expect_eq "$OTHER: snapshot create: exit status" 5 "$rc"
expect_eq "$OTHER: snapshot create" "$refused_line" "$out"
[ ! -e "$home/other.cow" ] || fail "$OTHER's refused snapshot create made its COW"
echo "  $OTHER: snapshot create refused the same way: exit $rc"
set +e
out=$(as "$OTHER" nbdinfo "nbd+unix:///snap?socket=$RUN/nbd.sock" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "$OTHER was served on the NBD socket"
expect_contains "$OTHER at the NBD socket" "Permission denied" "$out"
echo "  $OTHER: NBD socket refused by the kernel: $(echo "$out" | head -n 1)"

# CAP_DAC_OVERRIDE passes the file modes: the daemon's own check (SO_PEERCRED) is what is left.
set +e
out=$(as_dac "$OTHER" "$DMSNAP" ls --run-dir "$RUN" 2>&1); rc=$?
set -e
expect_eq "$OTHER with CAP_DAC_OVERRIDE at the control socket: exit status" 5 "$rc"
expect_eq "$OTHER with CAP_DAC_OVERRIDE at the control socket" "$refused_line" "$out"
echo "  $OTHER with CAP_DAC_OVERRIDE: control socket refused by the daemon: exit $rc: $out"
set +e
out=$(as_dac "$OTHER" "$DMSNAP" snapshot create vol other-snap --cow "$home/other.cow" --cow-size 4M --run-dir "$RUN" 2>&1); rc=$?
set -e
expect_eq "$OTHER with CAP_DAC_OVERRIDE: snapshot create: exit status" 5 "$rc"
expect_eq "$OTHER with CAP_DAC_OVERRIDE: snapshot create" "$refused_line" "$out"
[ ! -e "$home/other.cow" ] || fail "$OTHER's refused snapshot create made its COW"
echo "  $OTHER with CAP_DAC_OVERRIDE: snapshot create refused by the daemon the same way: exit $rc"
set +e
out=$(as_dac "$OTHER" env LIBNBD_DEBUG=1 nbdinfo "nbd+unix:///snap?socket=$RUN/nbd.sock" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "$OTHER with CAP_DAC_OVERRIDE was served on the NBD socket"
expect_contains "$OTHER with CAP_DAC_OVERRIDE at the NBD socket" \
    "server error message: permission denied: user $OTHER may not use this daemon's exports" "$out"
expect_contains "the client's error" "server replied with error to opt_go request" "$out"   # libnbd 1.14: ENOTSUP
echo "  $OTHER with CAP_DAC_OVERRIDE: NBD socket refused by the daemon: $(echo "$out" | grep -o 'server error message: permission.*' | head -n 1)"

log=$(cat "$LOG")
expect_contains "the daemon logs the control refusal" \
    "refused control request from user $OTHER (only root and $DAEMON may use $RUN/control.sock)" "$log"
expect_contains "the daemon logs the NBD refusal" \
    "NBD: refused a connection from user $OTHER (only root, $DAEMON and members of group $GROUP may use $RUN/nbd.sock)" "$log"
echo "  daemon log:"
grep "refused" "$LOG" | sed 's/^/    /'

ud remove snap
ud remove vol
kill "$daemon_pid"; wait "$daemon_pid" || fail "the daemon did not stop cleanly"; daemon_pid=""
figure access.non-root "the daemon as a non-root user: serves an origin and snapshot on its files; a root-only file and a block device refused (Permission denied, exit 5); root served on both sockets; a --nbd-group member served on NBD, refused at the control socket (exit 5); another user refused at both, and logged"
echo "non-root: OK"
