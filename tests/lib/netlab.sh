# tests/lib/netlab.sh: what the multi-host tests on the network-namespace lab
# (tests/netlab/lab) share; sourced after tap.sh.

# netlab_require: the lab needs root and network namespaces. Without them
# the test fails (one "not ok", never a skip) and exits. Probes by creating
# and deleting the namespace ${LAB_PREFIX}probe.
netlab_require() {
    if [ "$(id -u)" != 0 ]; then
        echo "not ok 1 - the netlab tests need root (network namespaces); run the suite as root"
        echo "1..1"; exit 1
    fi
    if ! ip netns add "${LAB_PREFIX}probe" 2>/dev/null; then
        echo "not ok 1 - cannot create a network namespace (container without CAP_SYS_ADMIN?)"
        echo "1..1"; exit 1
    fi
    ip netns del "${LAB_PREFIX}probe"
}

# Sub-second clock for the timed checks: now prints seconds.nanoseconds,
# elapsed A B prints B - A to 0.01 s.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails
# once SECONDS (fractions allowed) have passed. (tests/lib/agent.sh has a
# whole-second wait_for; a test sources one of the two.)
wait_for() {
    local end; end=$(awk -v n="$(now)" -v s="$1" 'BEGIN { printf "%.1f", n + s }'); shift
    until "$@"; do
        awk -v n="$(now)" -v e="$end" 'BEGIN { exit !(n > e) }' && return 1
        sleep 0.1
    done
}
