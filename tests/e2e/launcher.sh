#!/usr/bin/env bash
# The launcher on the built tree: --version, --help, the exit status of a bad option, and the
# clear message when no suitable JDK can be found.
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
echo "launcher: ok"
