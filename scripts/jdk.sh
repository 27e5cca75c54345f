# Sourced by ./dmsnap, ./test.sh and the bench scripts: finds a JDK new enough for dmsnap.
# dmsnap is compiled with --release 25, so building and running need JDK 25 or newer (the FFM
# API itself is final since 22; older JDKs are reported by version so the user knows what to get).
# Order: $JAVA_HOME, then the newest JDK in the system JVM folder, then java on PATH.

DMSNAP_MIN_JDK=25

# sets dmsnap_feature to the feature version (e.g. 25) of the JDK or JRE at $1, or to nothing. Its
# release file says it without starting a JVM (a start costs about 0.1 s, and every launch of
# ./dmsnap looks at each JDK installed), read with builtins: a fork costs about 10 ms on a slow VM;
# a JDK without one is asked.
dmsnap_jdk_feature() {
    local line
    dmsnap_feature=""
    if [ -r "$1/release" ]; then
        while IFS= read -r line; do
            case "$line" in
                JAVA_VERSION=\"[1-9]*)
                    line=${line#JAVA_VERSION=\"}
                    line=${line#1.} # 1.8.0_402 is Java 8
                    dmsnap_feature=${line%%[!0-9]*}
                    break
                    ;;
            esac
        done <"$1/release"
    fi
    case "$dmsnap_feature" in "")
        dmsnap_feature=$("$1/bin/java" -XshowSettings:properties -version 2>&1 \
            | sed -n 's/^ *java\.specification\.version = \([0-9][0-9]*\).*/\1/p' | head -n 1) ;;
    esac
}

# prints the feature version of the java binary $1 (e.g. 25), or nothing
dmsnap_java_feature() {
    local dmsnap_feature
    dmsnap_jdk_feature "$(dirname "$(dirname "$(readlink -f "$1")")")"
    echo "$dmsnap_feature"
}

# sets DMSNAP_JAVA_HOME or prints what is missing and returns 1
dmsnap_find_jdk() {
    local candidates=() seen="" c v best="" bestv=0 found_list="" dmsnap_feature java java_home="" jre
    if [ -n "${JAVA_HOME:-}" ]; then
        java_home=$(readlink -f "$JAVA_HOME")
        candidates+=("$java_home")
    fi
    local jvmdir
    for jvmdir in /usr/lib/jvm/*; do
        [ -d "$jvmdir" ] && candidates+=("$jvmdir")
    done
    if java=$(command -v java); then
        java=$(readlink -f "$java")
        java=${java%/*}
        candidates+=("${java%/*}")
    fi
    for c in "${candidates[@]}"; do
        # symbolic links (Debian's java-1.17.0-openjdk-amd64) name a JDK already seen
        [ ! -L "$c" ] || c=$(readlink -f "$c")
        case " $seen " in *" $c "*) continue ;; esac
        seen="$seen $c"
        [ -x "$c/bin/java" ] || continue
        dmsnap_jdk_feature "$c"
        v=$dmsnap_feature
        [ -n "$v" ] || continue
        jre=""
        [ -x "$c/bin/javac" ] || jre=" (no javac: a JRE, not a JDK)"
        found_list="$found_list  - Java $v at $c$jre"$'\n'
        # JAVA_HOME wins when it is new enough; otherwise the newest full JDK.
        if [ "$v" -ge "$DMSNAP_MIN_JDK" ] && [ -x "$c/bin/javac" ]; then
            if [ "$c" = "$java_home" ]; then
                best="$c"; bestv=$v; break
            fi
            if [ "$v" -gt "$bestv" ]; then best="$c"; bestv=$v; fi
        fi
    done
    if [ -z "$best" ]; then
        {
            echo "dmsnap: needs a JDK $DMSNAP_MIN_JDK or newer (java and javac; it is compiled with --release $DMSNAP_MIN_JDK)."
            if [ -n "$found_list" ]; then
                echo "Found only:"
                printf '%s' "$found_list"
            else
                echo "Found no Java at all (looked at \$JAVA_HOME, /usr/lib/jvm/*, and java on PATH)."
            fi
            echo "Install one (e.g. Eclipse Temurin 25 into /usr/lib/jvm) or point JAVA_HOME at it."
        } >&2
        return 1
    fi
    DMSNAP_JAVA_HOME="$best"
    export DMSNAP_JAVA_HOME
}

# sets DMSNAP_MVN or prints what is missing and returns 1
dmsnap_find_maven() {
    if command -v mvn >/dev/null 2>&1; then
        DMSNAP_MVN=$(command -v mvn)
        return 0
    fi
    echo "dmsnap: needs Apache Maven 3.8 or newer to build (Debian: apt-get install maven)." >&2
    return 1
}

# mvn with the JDK found above and quiet, colourless logs
dmsnap_mvn() {
    JAVA_HOME="$DMSNAP_JAVA_HOME" MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}" \
        "$DMSNAP_MVN" -B -Dstyle.color=never "$@"
}
