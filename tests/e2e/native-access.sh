#!/usr/bin/env bash
# jnativescan over the application's modules: only dmsnap.jextract and dmsnap.ffm may use
# restricted (native) methods.
. "$(dirname "$0")/lib.sh"
. "$E2E_ROOT/scripts/jdk.sh"
dmsnap_find_jdk
"$DMSNAP" --version >/dev/null   # builds the jar if needed
report=$("$DMSNAP_JAVA_HOME/bin/jnativescan" --module-path "$E2E_ROOT/daemon/target/dmsnap.jar:$E2E_ROOT/daemon/target/lib" \
    --add-modules ALL-MODULE-PATH 2>&1)
echo "$report" | grep -E "\.jar \(" || true
# jnativescan prints "  /path/to/file.jar (module.name):" for each module with restricted calls.
modules=$(echo "$report" | sed -n 's/^ *[^ ]*\.jar (\([A-Za-z0-9_.]*\)):$/\1/p' | sort -u | tr '\n' ' ')
echo "modules with native access: $modules"
for m in $modules; do
    case "$m" in
        dmsnap.jextract|dmsnap.ffm) ;;
        *) fail "module $m uses restricted methods; only jextract and ffm-bindings may" ;;
    esac
done
expect_eq "modules with native access" "dmsnap.ffm dmsnap.jextract " "$modules"
