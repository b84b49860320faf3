# tests/lib/tap.sh: minimal TAP output for shell tests (sourced).
# tap_check NAME CMD...  runs CMD, prints "ok N - NAME" or "not ok N - NAME".
# tap_done prints the plan and exits 1 if anything failed.
TAP_N=0
TAP_FAILED=0
tap_check() {
    name=$1; shift
    TAP_N=$((TAP_N + 1))
    if "$@"; then
        echo "ok $TAP_N - $name"
    else
        echo "not ok $TAP_N - $name"
        TAP_FAILED=$((TAP_FAILED + 1))
    fi
}
tap_diag() { echo "# $*"; }
tap_done() {
    echo "1..$TAP_N"
    [ "$TAP_FAILED" -eq 0 ]
    exit $?
}
