#!/usr/bin/env bash
# Builds jextract from an openjdk/jextract source tree with plain javac (no Gradle) against
# Debian's libclang, into OUT_DIR (default ./jextract-build), and writes OUT_DIR/bin/jextract.
#
#   jextract/build-jextract.sh SRC_DIR [OUT_DIR]
#
# Needs: a JDK >= 22 (javac) and `apt-get install libclang1-14 libclang-common-14-dev`.
# Tested with openjdk/jextract master @ f9866df3a178baa2e4a3746a7a6e458d783ace92.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ $# -lt 1 ] || [ ! -d "$1/src/main/java/org/openjdk/jextract" ]; then
    echo "usage: $0 SRC_DIR [OUT_DIR]   (SRC_DIR: an openjdk/jextract source tree)" >&2
    exit 2
fi
SRC=$(cd "$1" && pwd)
OUT=$(mkdir -p "${2:-$PWD/jextract-build}" && cd "${2:-$PWD/jextract-build}" && pwd)

# jextract's own sources need JDK 22+ (FFM final); any dmsnap JDK will do.
. "$ROOT/scripts/jdk.sh"
DMSNAP_MIN_JDK=22 dmsnap_find_jdk || exit 1
JAVA_HOME_J="$DMSNAP_JAVA_HOME"
feature=$(dmsnap_java_feature "$JAVA_HOME_J/bin/java")

LLVM=${LLVM_HOME:-/usr/lib/llvm-14}
LIBCLANG="$LLVM/lib/libclang.so.1"
CLANG_INCLUDE=$(ls -d "$LLVM"/lib/clang/*/include 2>/dev/null | sort -V | tail -n 1 || true)
if [ ! -e "$LIBCLANG" ] || [ -z "$CLANG_INCLUDE" ]; then
    echo "build-jextract.sh: libclang not found under $LLVM ($LIBCLANG, lib/clang/*/include)." >&2
    echo "On Debian: apt-get install --no-install-recommends libclang1-14 libclang-common-14-dev" >&2
    exit 1
fi

# The tool reads its own module version (--version); build.gradle sets jextract_version = 23.
JEXTRACT_VERSION=$(sed -n 's/^def jextract_version = "\(.*\)"/\1/p' "$SRC/build.gradle")
JEXTRACT_VERSION=${JEXTRACT_VERSION:-23}

MOD="$OUT/mods/org.openjdk.jextract"
rm -rf "$OUT/mods" "$OUT/lib" "$OUT/bin"
mkdir -p "$MOD" "$OUT/lib" "$OUT/bin"
echo "compiling jextract $JEXTRACT_VERSION with $JAVA_HOME_J (release $feature)..." >&2
find "$SRC/src/main/java" -name '*.java' >"$OUT/sources.txt"
"$JAVA_HOME_J/bin/javac" --release "$feature" --module-version "$JEXTRACT_VERSION" -nowarn -d "$MOD" @"$OUT/sources.txt"
cp -r "$SRC/src/main/resources/." "$MOD/"
# System.loadLibrary("clang") wants an unversioned libclang.so (only libclang-14-dev ships one).
ln -sf "$LIBCLANG" "$OUT/lib/libclang.so"

cat >"$OUT/bin/jextract" <<WRAPPER
#!/usr/bin/env bash
# jextract $JEXTRACT_VERSION built by dmsnap's jextract/build-jextract.sh from $SRC
exec "$JAVA_HOME_J/bin/java" --enable-native-access=org.openjdk.jextract \\
    -Djava.library.path="$OUT/lib" -Djextract.header.path="$CLANG_INCLUDE" \\
    -p "$OUT/mods" -m org.openjdk.jextract/org.openjdk.jextract.JextractTool "\$@"
WRAPPER
chmod +x "$OUT/bin/jextract"
"$OUT/bin/jextract" --version >&2
echo "built $OUT/bin/jextract; use it with:" >&2
echo "  JEXTRACT=$OUT/bin/jextract jextract/regenerate.sh" >&2
