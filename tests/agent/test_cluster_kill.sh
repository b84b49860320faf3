#!/bin/sh
# tests/agent/test_cluster_kill.sh: kill -9 an agent while it appends to its
# event log (a one-node cluster whose leader appends back to back through
# the test aid --test-events). After each kill: the log is contiguous, its
# commit index and term/vote are consistent (shoal replay --json), and on
# restart the node leads again in a higher term with every entry it had
# served as committed, byte for byte. Three rounds, killed at random moments.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/agent.sh"
J="python3 $SHOAL_SOURCE_ROOT/tests/lib/shoal_json.py"

dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; if [ "$TAP_FAILED" -gt 0 ]; then tail -30 "$dir/log" | sed "s/^/# /"; fi; rm -rf "$dir"' EXIT
api=$(free_port)
peer=$(free_port)
URL="http://127.0.0.1:$api"

start() {
    "$SHOAL_BIN" agent --data-dir "$dir/data" --api-port "$api" --peer-port "$peer" --no-mdns \
        --name solo "$@" 2>>"$dir/log" &
    pid=$!
}
role_is() { [ "$(curl -s -m 1 "$URL/health" | $J get role)" = "$1" ]; }
# pages PREFIX UPTO: GET /events for entries 1..UPTO into PREFIX.N files, merged into PREFIX.json
pages() {
    _since=0; _k=0
    while [ "$_since" -lt "$2" ]; do
        _k=$((_k + 1))
        curl -s -m 5 "$URL/events?since=$_since&limit=1000" >"$1.$_k" || return 1
        _next=$($J get next "$1.$_k")
        [ "$_next" -gt "$_since" ] || return 1
        _since=$_next
    done
    $J merge "$1".[0-9]* >"$1.json"
}

node=""
prev_term=0
for round in 1 2 3; do
    start --test-events 1000000
    tap_check "round $round: the node leads within 15 s" wait_for 15 role_is leader
    [ -z "$node" ] && node=$(curl -s "$URL/health" | $J get node_id)
    # appending back to back for a random 0.2..1.2 s, then pages of what is committed
    sleep "$(awk -v r="$(od -An -N2 -tu2 /dev/urandom)" 'BEGIN { printf "%.2f", 0.2 + r / 65535 }')"
    commit=$(curl -s "$URL/state" | $J get commit_index)
    tap_check "round $round: committed entries served ($commit)" pages "$dir/before$round" "$commit"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    "$SHOAL_BIN" replay --data-dir "$dir/data" --json >"$dir/replay$round.json" 2>"$dir/replay.err"
    set -- $($J log-ok "$dir/replay$round.json" 2>>"$dir/log")
    last=${1:-0} rcommit=${2:-0} term=${3:-0} voted=${4:-}
    tap_diag "round $round: killed with $commit entries served as committed; on disk: last #$last, commit #$rcommit, term $term"
    tap_check "round $round: log contiguous, nothing rejected" test "$last" -gt 0
    tap_check "round $round: every served commit is on disk" test "$last" -ge "$commit" -a "$rcommit" -ge "$commit"
    tap_check "round $round: term moved on, vote is the node's own" \
        test "$term" -gt "$prev_term" -a "$voted" = "$node"
    prev_term=$term
    start
    tap_check "round $round: restarted, it leads again" wait_for 15 role_is leader
    tap_check "round $round: ...in a higher term" \
        test "$(curl -s "$URL/health" | $J get term)" -gt "$term"
    tap_check "round $round: the same committed entries after the restart" pages "$dir/after$round" "$commit"
    tap_check "round $round: ...byte for byte" \
        $J entries-match "$commit" "$dir/before$round.json" "$dir/after$round.json"
    kill -TERM "$pid"
    wait_exit "$pid" 10; st=$EXIT_STATUS
    pid=""
    tap_check "round $round: SIGTERM: clean exit" test "$st" = 0
done
"$SHOAL_BIN" replay --data-dir "$dir/data" >"$dir/replay.txt" 2>&1
tap_check "shoal replay shows the appended events" grep -q "node_info_updated  node " "$dir/replay.txt"
tap_check "...each restart's election" test "$(grep -c 'leader_elected' "$dir/replay.txt")" -ge 3
tap_check "...and no rejected entry" sh -c "! grep -q REJECTED '$dir/replay.txt'"
tap_done
