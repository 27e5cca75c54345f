#!/usr/bin/env bash
# The launcher on the built tree: --version, --help, the exit status of a bad option, the clear
# message when no suitable JDK can be found, and its AOT cache: made by a training on the daemon's
# I/O path, used by the daemon and by a verb, made again when stale, and no cache (but a working
# command) when the training cannot run.
. "$(dirname "$0")/lib.sh"

out=$("$DMSNAP" --version)
expect_contains "--version" "dmsnap 0.1.0" "$out"
expect_contains "--version names the bindings target" "native bindings: generated for Linux amd64" "$out"
echo "$out" | sed 's/^/  /'

help=$("$DMSNAP" --help)
expect_contains "--help" "Usage: dmsnap" "$help"
expect_contains "--help lists quickstart" "quickstart" "$help"

set +e
err=$("$DMSNAP" --no-such-option 2>&1 >/dev/null)
rc=$?
set -e
expect_eq "exit status of an unknown option" 2 "$rc"
expect_contains "unknown option message" "Unknown option: '--no-such-option'" "$err"

# No suitable JDK: the finder must say what it needs and list what it found. Simulated by
# raising the minimum to 99 and offering a fake JDK 17 through JAVA_HOME.
fake=$E2E_WORK/fake
mkdir -p "$fake/bin"
cat >"$fake/bin/java" <<'J'
#!/bin/sh
echo "    java.specification.version = 17" >&2
echo 'openjdk version "17.0.15"' >&2
J
chmod +x "$fake/bin/java"
set +e
msg=$(env -i PATH="$fake/bin:/usr/bin:/bin" HOME="$HOME" JAVA_HOME="$fake" bash -c '
    . "'"$E2E_ROOT"'/scripts/jdk.sh"
    DMSNAP_MIN_JDK=99 dmsnap_find_jdk' 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] || fail "dmsnap_find_jdk accepted no JDK >= 99"
expect_contains "missing-JDK message" "needs a JDK 99 or newer" "$msg"
expect_contains "missing-JDK message lists what it found" "Java 17 at $fake" "$msg"
# ---- the AOT cache, in a copy of the built tree (the cache of the real one stays as it is) -------
tree=$E2E_WORK/tree
mkdir -p "$tree/daemon/target" "$tree/scripts" "$E2E_WORK/tmp"
cp -p "$E2E_ROOT/dmsnap" "$tree/"
cp -p "$E2E_ROOT/scripts/jdk.sh" "$tree/scripts/"
cp -a "$E2E_ROOT/daemon/target/dmsnap.jar" "$E2E_ROOT/daemon/target/lib" "$tree/daemon/target/"
caches() { (cd "$tree/daemon/target" && ls -A | grep '^dmsnap.*\.aot' || true); }
leftovers() { ls -A "$E2E_WORK/tmp"; }
export TMPDIR=$E2E_WORK/tmp
# Trainings run two at a time below, each a daemon and a client JVM: a busy machine may take longer
# than the launcher's 120 s per JVM, and a killed training leaves no cache, which this test asserts.
export DMSNAP_AOT_TRAIN_SECONDS=900

# Two first launches at once: each trains (in its own directory); one cache is left, nothing else.
DMSNAP_DEBUG=1 "$tree/dmsnap" --version >"$E2E_WORK/v1" 2>"$E2E_WORK/d1" &
first=$!
DMSNAP_DEBUG=1 "$tree/dmsnap" --version >"$E2E_WORK/v2" 2>"$E2E_WORK/d2"
wait "$first" || fail "the first of two concurrent launches failed: $(cat "$E2E_WORK/d1")"
expect_contains "the first concurrent launch answers" "dmsnap 0.1.0" "$(cat "$E2E_WORK/v1")"
expect_contains "the second concurrent launch answers" "dmsnap 0.1.0" "$(cat "$E2E_WORK/v2")"
expect_contains "the first launch trained" "AOT cache trained in" "$(cat "$E2E_WORK/d1")"
expect_contains "the second launch trained" "AOT cache trained in" "$(cat "$E2E_WORK/d2")"
expect_eq "caches in daemon/target" 1 "$(caches | wc -l)"
cache=$tree/daemon/target/$(caches)
expect_eq "files the trainings left in TMPDIR" "" "$(leftovers)"
echo "  cache: $(caches), $(stat -c %s "$cache") bytes"

# The daemon uses it: its classes are linked from it, the I/O path's among them, with the
# training's method profiles (JEP 515).
DMSNAP_JAVA_OPTS="-Xlog:aot=info:stderr -Xlog:aot+load=info:stderr -XX:+UnlockDiagnosticVMOptions -XX:+AOTPrintTrainingInfo -XX:+DisplayVMOutputToStderr" \
    DMSNAP="$tree/dmsnap" start_daemon "$E2E_WORK/run"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "the daemon did not stop cleanly"
daemon_pid=""
log=$(cat "$E2E_WORK/daemon.log")
expect_contains "the daemon opens the cache" "Opened AOT cache $cache" "$log"
expect_contains "the daemon links classes from it" "Using AOT-linked classes: true" "$log"
expect_contains "the NBD request path is in the cache" "app   dmsnap.nbd.NbdConnection" "$log"
expect_contains "the snapshot I/O path is in the cache" "app   dmsnap.snapshot.SnapshotIo" "$log"
expect_contains "with method profiles from the training" "dmsnap/snapshot/SnapshotIo" \
    "$(sed -n '/Archived TrainingData Dictionary/,$p' <<<"$log")"
# ... and so does a verb (verbs run with C1 only: the cache fits them too)
out=$(DMSNAP_JAVA_OPTS="-Xlog:aot=info:stderr" "$tree/dmsnap" ls --run-dir "$E2E_WORK/none" 2>&1 || true)
expect_contains "a verb opens the cache" "Opened AOT cache $cache" "$out"
expect_contains "a verb links classes from it" "Using AOT-linked classes: true" "$out"

# Stale: a cache older than the jar (here: not even a cache) is trained again.
echo "not a cache" >"$cache"
touch -d '1 hour ago' "$cache"
err=$(DMSNAP_DEBUG=1 "$tree/dmsnap" --version 2>&1 >/dev/null)
expect_contains "a stale cache is trained again" "AOT cache trained in" "$err"
[ "$cache" -nt "$tree/daemon/target/dmsnap.jar" ] || fail "the new cache is not newer than the jar"
out=$(DMSNAP_JAVA_OPTS="-Xlog:aot=info:stderr" "$tree/dmsnap" --version 2>&1)
expect_contains "the new cache is used" "Opened AOT cache $cache" "$out"
expect_contains "the new cache links" "Using AOT-linked classes: true" "$out"
expect_eq "caches after the new training" 1 "$(caches | wc -l)"
expect_eq "files the training left in TMPDIR" "" "$(leftovers)"

# A training that cannot run (no TMPDIR) means no cache, a debug line, and a command that works
# and says nothing about it.
rm -f "$cache"
err=$(TMPDIR=$E2E_WORK/missing DMSNAP_DEBUG=1 "$tree/dmsnap" --version 2>&1 >/dev/null)
expect_contains "a failed training says so" "no AOT cache: its training failed" "$err"
expect_eq "caches after a failed training" "" "$(caches)"
out=$(TMPDIR=$E2E_WORK/missing "$tree/dmsnap" --version 2>&1)
expect_contains "without a cache the command works" "dmsnap 0.1.0" "$out"
expect_eq "lines of --version without a cache" 4 "$(grep -c . <<<"$out")"
echo "launcher: ok"
