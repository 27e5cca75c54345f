#!/usr/bin/env bash
# Installs dmsnap for the shell: the man pages (one per command: dmsnap(1), dmsnap-create(1),
# dmsnap-snapshot-create(1), ...) and the bash completion, both generated from the CLI by the
# build (daemon/target/man/*.adoc, daemon/target/bash-completion/dmsnap), and a `dmsnap` command
# that runs this checkout's launcher.
#
#   packaging/install.sh [--prefix DIR] [--destdir DIR]
#
# PREFIX (default /usr): PREFIX/bin/dmsnap (a link to ./dmsnap), PREFIX/share/man/man1/*.1,
# PREFIX/share/bash-completion/completions/dmsnap. DESTDIR is prepended to each (staging, as for
# a package). The man pages are made roff by asciidoctor (Debian: apt-get install asciidoctor).
# The daemon's systemd unit is packaging/dmsnap.service (see its header).
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
prefix=/usr
destdir=
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
command -v asciidoctor >/dev/null ||
    { echo "install.sh: asciidoctor is needed to make the man pages (Debian: apt-get install asciidoctor)" >&2; exit 1; }

# The launcher builds the application (and with it the pages and the completion) when it is stale.
"$ROOT/dmsnap" --version >/dev/null
MAN_SRC="$ROOT/daemon/target/man"
COMPLETION="$ROOT/daemon/target/bash-completion/dmsnap"
[ -f "$MAN_SRC/dmsnap.adoc" ] && [ -f "$COMPLETION" ] ||
    { echo "install.sh: $MAN_SRC or $COMPLETION is missing: build with 'mvn package' (not -Dmaven.test.skip=true)" >&2; exit 1; }

roff=$(mktemp -d "${TMPDIR:-/tmp}/dmsnap-man.XXXXXX")
trap 'rm -rf "$roff"' EXIT
asciidoctor -b manpage --failure-level WARN -D "$roff" "$MAN_SRC"/*.adoc

man1="$destdir$prefix/share/man/man1"
completions="$destdir$prefix/share/bash-completion/completions"
bin="$destdir$prefix/bin"
install -d "$man1" "$completions" "$bin"
install -m 0644 "$roff"/*.1 "$man1/"
install -m 0644 "$COMPLETION" "$completions/dmsnap"
ln -sfn "$ROOT/dmsnap" "$bin/dmsnap"
echo "installed $(ls "$roff" | wc -l) man pages in $man1, the bash completion in $completions/dmsnap, $bin/dmsnap -> $ROOT/dmsnap"
