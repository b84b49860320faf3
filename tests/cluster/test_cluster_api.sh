#!/bin/sh
# tests/cluster/test_cluster_api.sh DISC_NODE: one agent on loopback, driven
# from outside as a user would: the control-plane endpoints (/health,
# /state, /nodes, /events pages and their bad parameters, the event stream
# with a client that reads, one that does not read and one that leaves),
# `shoal status`, and a peer with a valid link that sends a malformed Raft
# message (tests/discovery/disc_node): logged and dropped, the node goes on.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/agent.sh"
NODE=${1:?usage: test_cluster_api.sh DISC_NODE}
J="python3 $SHOAL_SOURCE_ROOT/tests/lib/shoal_json.py"

dir=$(mktemp -d)
pid=""
others=""
trap 'kill $pid $others 2>/dev/null; if [ "$TAP_FAILED" -gt 0 ]; then tail -40 "$dir/log" | sed "s/^/# /"; fi; rm -rf "$dir"' EXIT
api=$(free_port)
peer=$(free_port)
nport=$(free_port)
URL="http://127.0.0.1:$api"
get() { curl -s -m 5 "$URL$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' -m 5 "$URL$1"; }

"$SHOAL_BIN" agent --data-dir "$dir/data" --name api-test --api-port "$api" --peer-port "$peer" \
    --no-mdns --peer "127.0.0.1:$nport" --test-events 150 2>"$dir/log" &
pid=$!
leads() { [ "$(get /health | $J get role)" = leader ]; }
tap_check "the agent leads its one-node cluster" wait_for 20 leads
h=$(get /health)
tap_check "/health: node id, role, term, epoch, leader (itself)" \
    test "$(echo "$h" | $J get leader.id)" = "$(echo "$h" | $J get node_id)" -a \
    "$(echo "$h" | $J get epoch)" = 1
appended() { [ "$(get /state | $J get commit_index)" -ge 152 ]; }
tap_check "the test events are committed" wait_for 20 appended
st=$(get /state)
tap_check "/state: the node registered itself with its resources" \
    test "$(echo "$st" | $J get state.nodes | grep -c api-test)" = 1
tap_check "/state: one member, the leader" \
    test "$(echo "$st" | $J get state.epoch.members)" = "$(echo "$h" | $J get node_id)"

get '/events?since=0&limit=10' >"$dir/page1"
tap_check "/events: a page of 10 from #1" test "$($J get next "$dir/page1")" = 10
tap_check "/events: ...says there is more" test "$($J get more "$dir/page1")" = true
tap_check "/events: ...starting with the bootstrap epoch" \
    sh -c "$J get events '$dir/page1' | grep -q '\"type\": \"epoch_started\"'"
tap_check "/events?since=abc: 400" test "$(code '/events?since=abc')" = 400
tap_check "...naming the parameter" sh -c "curl -s '$URL/events?since=abc' | grep -q since"
tap_check "/events?limit=5000: 400" test "$(code '/events?limit=5000')" = 400
tap_check "/events?stream=2: 400" test "$(code '/events?stream=2')" = 400
tap_check "/events past the end: an empty page" \
    test "$(get '/events?since=100000' | $J get events)" = ""

# a stream that reads: every committed entry once, in order, from #1
curl -s -N -m 3 "$URL/events?since=0&stream=1" >"$dir/stream" 2>/dev/null
ids_ok() {
    grep '^id: ' "$dir/stream" | awk '{ if ($2 != NR) exit 1 } END { exit !(NR >= 152) }'
}
tap_check "stream: entries #1.. in order, each once" ids_ok
tap_check "stream: server-sent event framing" grep -q '^event: entry' "$dir/stream"
# a client that connects and never reads, and one that leaves at once
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /events?since=0&stream=1 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(30)' "$api" &
others="$others $!"
curl -s -N -m 1 "$URL/events?since=0&stream=1" >/dev/null 2>&1
fast_health() { curl -s -m 1 -o /dev/null "$URL/health"; }
tap_check "a stalled stream client does not hold the node up" fast_health
tap_check "HEAD on the stream answers at once" \
    sh -c "curl -s -I -m 2 '$URL/events?stream=1' | grep -q '200'"

# a peer with a valid link sends a malformed Raft message
"$NODE" --name rogue --port "$nport" --peer "127.0.0.1:$peer" >"$dir/node.out" 2>"$dir/node.err" &
npid=$!
others="$others $npid"
linked() { grep -q ' up ' "$dir/node.out"; }
tap_check "a discovery-only peer links" wait_for 15 linked
kill -USR1 "$npid"
refused() { grep -q 'malformed message from' "$dir/log"; }
tap_check "its malformed Raft message is logged and dropped" wait_for 10 refused
tap_check "the node goes on" leads
nodes=$(get /nodes)
tap_check "/nodes: the peer is linked but not a member" sh -c \
    "echo '$nodes' | python3 -c 'import json,sys; d=json.load(sys.stdin); r=[n for n in d[\"nodes\"] if n[\"name\"]==\"rogue\"]; sys.exit(not (r and r[0][\"link\"]==\"up\" and not r[0][\"member\"]))'"

out=$("$SHOAL_BIN" status --api "127.0.0.1:$api")
tap_check "shoal status: role and leader" sh -c "echo '$out' | grep -q 'api-test.*: leader, term'"
tap_check "shoal status: the peer's link" sh -c "echo '$out' | grep -q 'rogue .*link up'"
"$SHOAL_BIN" status --api "127.0.0.1:$nport" >/dev/null 2>"$dir/err"; st=$?
tap_check "shoal status with nothing (HTTP) there: exit 1" test "$st" = 1
tap_check "...saying why" grep -q "nothing answers at" "$dir/err"

kill -TERM $pid
wait_exit $pid 10; st=$EXIT_STATUS
tap_check "SIGTERM: clean exit 0" test "$st" = 0
tap_check "no sanitizer reports" sh -c "! grep -q 'Sanitizer\|runtime error' '$dir/log'"
pid=""
tap_done
