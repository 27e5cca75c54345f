#!/usr/bin/env bash
# Man pages and bash completion, generated from the CLI by the build and installed by
# packaging/install.sh into a staging directory: a roff page per command that man renders with
# its options, a completion script bash accepts for dmsnap, and the dmsnap link that runs.
. "$(dirname "$0")/lib.sh"
work=$E2E_WORK

"$DMSNAP" --version >/dev/null   # builds the application, its pages and its completion
completion="$E2E_ROOT/daemon/target/bash-completion/dmsnap"
expect_contains "the built completion script" "-F _complete_dmsnap dmsnap" \
    "$(bash -c 'source "$1" && complete -p dmsnap' bash "$completion")"
for verb in create ls daemon cow-check snapshot-create snapshot-merge; do
    [ -f "$E2E_ROOT/daemon/target/man/dmsnap-$verb.adoc" ] || fail "no man page source for dmsnap-$verb"
done

if ! command -v asciidoctor >/dev/null; then
    echo "  SKIPPED packaging/install.sh: asciidoctor is not installed"
    echo "cli docs: ok"
    exit 0
fi
stage="$work/root"
"$E2E_ROOT/packaging/install.sh" --destdir "$stage" >/dev/null
man1="$stage/usr/share/man/man1"
pages=$(cd "$E2E_ROOT/daemon/target/man" && ls ./*.adoc | wc -l)
expect_eq "one man page per command" "$pages" "$(ls "$man1"/*.1 | wc -l)"
page=$(MANPATH="$stage/usr/share/man" MANWIDTH=120 man dmsnap-create 2>/dev/null)
expect_contains "man dmsnap-create" "dmsnap create [-hrvV] [--json] [--notable]" "$page"
expect_contains "man dmsnap-create documents --uuid" "--uuid=UUID" "$page"
page=$(MANPATH="$stage/usr/share/man" MANWIDTH=120 man dmsnap 2>/dev/null)
expect_contains "man dmsnap lists the global options" "--run-dir=DIR" "$page"
expect_contains "man dmsnap lists the exit statuses" "no daemon at the run directory" "$page"
expect_contains "the installed completion" "-F _complete_dmsnap dmsnap" \
    "$(bash -c 'source "$1" && complete -p dmsnap' bash "$stage/usr/share/bash-completion/completions/dmsnap")"
expect_contains "the installed dmsnap runs the launcher" "dmsnap 0." "$("$stage/usr/bin/dmsnap" --version)"
echo "  $pages man pages, the completion and the dmsnap link installed into a staging directory"
echo "cli docs: ok"
