# Helpers for end-to-end tests (sourced). Each test is a bash script that exits non-zero on failure.
set -euo pipefail
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DMSNAP="$E2E_ROOT/dmsnap"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
}

# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() {
    case "$3" in *"$2"*) ;; *) fail "$1: [$2] not found in [$3]" ;; esac
}
