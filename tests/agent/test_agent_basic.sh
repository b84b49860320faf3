#!/bin/sh
# tests/agent/test_agent_basic.sh: `shoal agent` starts, answers /health,
# enforces the API key and stops cleanly on SIGTERM.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/agent.sh"

dir=$(mktemp -d)
trap 'kill $pid $first 2>/dev/null; rm -rf "$dir"' EXIT
port=$(free_port)

"$SHOAL_BIN" agent --data-dir "$dir/data" --api-port "$port" --peer-port 0 --no-mdns --api-key sekrit \
    2>"$dir/log" &
pid=$!
tap_check "agent answers within 10 s" wait_http "http://127.0.0.1:$port/health" 10
body=$(curl -s "http://127.0.0.1:$port/health")
tap_check "/health is ok without the key" sh -c "echo '$body' | grep -q '\"status\":\"ok\"'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/state")
tap_check "other routes need the key (401)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekrit' \
    "http://127.0.0.1:$port/no-such-route")
tap_check "with the key: unknown route is 404" test "$code" = 404
tap_check "data dir created 0700" test "$(stat -c %a "$dir/data")" = 700
kill -TERM $pid
wait_exit $pid 10; st=$EXIT_STATUS
tap_check "SIGTERM: clean exit 0 within 10 s" test "$st" = 0
tap_check "log says it stopped" grep -q "agent: stopped" "$dir/log"

# A port in use (by another agent, which is known to be listening once it
# answers) is a clear failure, not a hang.
"$SHOAL_BIN" agent --data-dir "$dir/data" --api-port "$port" --peer-port 0 --no-mdns 2>"$dir/log1" &
first=$!
tap_check "first agent answers" wait_http "http://127.0.0.1:$port/health" 10
"$SHOAL_BIN" agent --data-dir "$dir/data2" --api-port "$port" --peer-port 0 --no-mdns 2>"$dir/log2" &
pid=$!
wait_exit $pid 10; st=$EXIT_STATUS
tap_check "port in use: exit 1" test "$st" = 1
tap_check "port in use: error names the address" grep -q "ERROR.*127.0.0.1:$port" "$dir/log2"
kill -TERM $first; wait_exit $first 10

"$SHOAL_BIN" agent --api-port 70000 2>/dev/null; st=$?
tap_check "bad --api-port is a usage error (2)" test $st = 2
"$SHOAL_BIN" agent --bogus 2>/dev/null; st=$?
tap_check "unknown flag is a usage error (2)" test $st = 2
tap_done
