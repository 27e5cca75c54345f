# Sourced by ./dmsnap, ./test.sh and the bench scripts: finds a JDK new enough for dmsnap.
# dmsnap is compiled with --release 25, so building and running need JDK 25 or newer (the FFM
# API itself is final since 22; older JDKs are reported by version so the user knows what to get).
# Order: $JAVA_HOME, then the newest JDK in the system JVM folder, then java on PATH.

DMSNAP_MIN_JDK=25

# prints the feature version of the java binary $1 (e.g. 25), or nothing
dmsnap_java_feature() {
    "$1" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9][0-9]*\).*/\1/p' | head -n 1
}

# sets DMSNAP_JAVA_HOME or prints what is missing and returns 1
dmsnap_find_jdk() {
    local candidates=() seen="" c v best="" bestv=0 found_list=""
    [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
    local jvmdir
    for jvmdir in /usr/lib/jvm/*; do
        [ -d "$jvmdir" ] && candidates+=("$jvmdir")
    done
    if command -v java >/dev/null 2>&1; then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
    fi
    for c in "${candidates[@]}"; do
        c=$(readlink -f "$c")
        case " $seen " in *" $c "*) continue ;; esac
        seen="$seen $c"
        [ -x "$c/bin/java" ] || continue
        v=$(dmsnap_java_feature "$c/bin/java")
        [ -n "$v" ] || continue
        found_list="$found_list  - Java $v at $c$( [ -x "$c/bin/javac" ] || echo ' (no javac: a JRE, not a JDK)')"$'\n'
        # JAVA_HOME wins when it is new enough; otherwise the newest full JDK.
        if [ "$v" -ge "$DMSNAP_MIN_JDK" ] && [ -x "$c/bin/javac" ]; then
            if [ -n "${JAVA_HOME:-}" ] && [ "$c" = "$(readlink -f "$JAVA_HOME")" ]; then
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
