#!/bin/bash
# tests/discovery/test_netlab.sh DISC_NODE DELAYLINE: discovery across three
# lab hosts (network namespaces, each with its own avahi-daemon), driven
# through tests/netlab/lab and tests/discovery/disc_node:
#   cables out at start -> no links; plug -> every pair linked (timed);
#   a node with another cluster key never links; unplug one -> the others
#   see it down within the link timeout (timed); replug -> relinked (timed);
#   avahi-daemon restarted under a running node -> it publishes again;
#   clean stop -> goodbye; static peers with every avahi-daemon stopped.
# Needs root; fails (does not skip) without namespaces. Every wait is bounded.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/netlab.sh"
NODE=${1:?usage: test_netlab.sh DISC_NODE DELAYLINE}
export LAB_DELAYLINE=${2:?usage: test_netlab.sh DISC_NODE DELAYLINE}
LAB="$SHOAL_SOURCE_ROOT/tests/netlab/lab"
export LAB_PREFIX="td$((RANDOM % 100000))"
HB=200      # heartbeat, ms
TIMEOUT=1500 # link timeout, ms
PORT=7001
KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
OTHER_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

netlab_require

OUT=$(mktemp -d)
PIDS=""
cleanup() {
    local p
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    "$LAB" down >/dev/null 2>&1
    if [ "$TAP_FAILED" -gt 0 ]; then
        for f in "$OUT"/*; do echo "# ---- $f"; sed 's/^/# /' "$f" | tail -40; done
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT

# start NAME HOST ARGS...: a disc_node in lab host HOST, output in $OUT/NAME.*
start() {
    local name=$1 host=$2; shift 2
    "$LAB" exec "$host" "$NODE" --name "$name" --port "${NODE_PORT:-$PORT}" --heartbeat-ms $HB \
        --timeout-ms $TIMEOUT "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    eval "PID_$name=$!"
    PIDS="$PIDS $!"
}
BAD_EXITS=""
stop() { # NAME: SIGTERM, wait (bounded), note a non-zero exit (sanitizer reports)
    local p rc; p=$(eval echo "\$PID_$1")
    kill -TERM "$p" 2>/dev/null
    wait_for 5 sh -c "! kill -0 $p 2>/dev/null"
    wait "$p" 2>/dev/null; rc=$?
    [ "$rc" = 0 ] || BAD_EXITS="$BAD_EXITS $1:$rc"
}
ready() { grep -q ' ready ' "$OUT/$1.out" 2>/dev/null; }
id_of() { awk '$2 == "ready" { print $3; exit }' "$OUT/$1.out"; }
# ups NAME SINCE: ids with an "up" line at or after SINCE
ups_since() { awk -v t="$2" '$1 >= t && $2 == "up" { print $3 }' "$OUT/$1.out" | sort -u; }
has_up() { ups_since "$1" "$2" | grep -qx "$3"; }
has_down() { awk -v t="$2" -v id="$3" '$1 >= t && $2 == "down" && $3 == id { f = 1 } END { exit !f }' "$OUT/$1.out"; }
up_at() { awk -v t="$2" -v id="$3" '$1 >= t && $2 == "up" && $3 == id { print $1; exit }' "$OUT/$1.out"; }
down_at() { awk -v t="$2" -v id="$3" '$1 >= t && $2 == "down" && $3 == id { print $1; exit }' "$OUT/$1.out"; }
all_linked() { # SINCE NAMES...: every pair has an up line since SINCE
    local t=$1 a b; shift
    for a in "$@"; do for b in "$@"; do
        [ "$a" = "$b" ] && continue
        has_up "$a" "$t" "$(id_of "$b")" || return 1
    done; done
}
latest_up() { # SINCE NAMES...: the last up time among all pairs
    local t=$1 a b m=0 x; shift
    for a in "$@"; do for b in "$@"; do
        [ "$a" = "$b" ] && continue
        x=$(up_at "$a" "$t" "$(id_of "$b")")
        m=$(awk -v m="$m" -v x="${x:-0}" 'BEGIN { print (x > m ? x : m) }')
    done; done
    echo "$m"
}

tap_check "lab up 3" timeout 60 "$LAB" up 3
for i in 1 2 3; do "$LAB" unplug $i; done

# ---- cables out: nothing links; then plug ----------------------------------
start n1 1 --cluster-key "$KEY"
start n2 2 --cluster-key "$KEY"
start n3 3 --cluster-key "$KEY"
# a stranger: another cluster key, on host 3, dialing 1 and 2 directly too
NODE_PORT=7002 start stranger 3 --cluster-key "$OTHER_KEY" --peer 198.18.0.1:$PORT --peer 198.18.0.2:$PORT
all_ready() { local n; for n in "$@"; do ready "$n" || return 1; done; }
tap_check "all nodes start" wait_for 10 all_ready n1 n2 n3 stranger
sleep 2
tap_check "no link while every cable is out" sh -c "! grep -q ' up ' $OUT/n1.out $OUT/n2.out $OUT/n3.out"
T=$(now)
for i in 1 2 3; do "$LAB" plug $i; done
tap_check "plug: every pair linked" wait_for 20 all_linked "$T" n1 n2 n3
tap_diag "plug -> all 3 pairs linked: $(elapsed "$T" "$(latest_up "$T" n1 n2 n3)") s"
sleep 2
tap_check "the stranger (other cluster key) never links" sh -c "! grep -q ' up ' $OUT/stranger.out"
tap_check "nobody links the stranger" sh -c "! grep -q '$(id_of stranger)' $OUT/n1.out $OUT/n2.out $OUT/n3.out"
tap_check "its direct dials were refused" grep -q "did not prove our cluster key" "$OUT/n1.err"

# ---- a second service named like node 1's gets another name ----------------
NODE_PORT=7003 start dup 2 --cluster-key "$OTHER_KEY" --name n1
tap_check "a service name collision is resolved by renaming" \
    wait_for 15 grep -q "service name 'n1' is taken" "$OUT/dup.err"
stop dup

# ---- pull host 3's cable, then put it back ---------------------------------
ID1=$(id_of n1); ID2=$(id_of n2); ID3=$(id_of n3)
T=$(now)
"$LAB" unplug 3
both_down() { has_down "$1" "$T" "$3" && has_down "$2" "$T" "$4"; }
tap_check "unplug 3: nodes 1 and 2 see it down" wait_for 10 both_down n1 n2 "$ID3" "$ID3"
d1=$(elapsed "$T" "$(down_at n1 "$T" "$ID3")"); d2=$(elapsed "$T" "$(down_at n2 "$T" "$ID3")")
tap_diag "unplug -> link down: node1 $d1 s, node2 $d2 s (link timeout $TIMEOUT ms)"
tap_check "...within the link timeout" awk -v a="$d1" -v b="$d2" -v t="$TIMEOUT" \
    'BEGIN { exit !(a <= t / 1000 + 0.5 && b <= t / 1000 + 0.5) }'
tap_check "node 3 sees both down" wait_for 10 both_down n3 n3 "$ID1" "$ID2"
tap_check "nodes 1 and 2 stay linked" eval '! has_down n1 "$T" "$ID2"'
sleep 1
T=$(now)
"$LAB" plug 3
tap_check "replug: relinked" wait_for 20 all_linked "$T" n1 n3
tap_check "replug: relinked (2-3)" wait_for 20 all_linked "$T" n2 n3
tap_diag "replug -> relinked: $(elapsed "$T" "$(latest_up "$T" n1 n2 n3 2>/dev/null)") s"

# ---- avahi-daemon restarted under a running node ---------------------------
DOWNS_BEFORE=$(grep -c ' down ' "$OUT/n1.out")
"$LAB" avahi-stop 1
tap_check "node 1 notices avahi went away" wait_for 10 grep -q "lost avahi-daemon" "$OUT/n1.err"
tap_check "avahi-start 1" timeout 30 "$LAB" avahi-start 1
tap_check "node 1 reconnects to avahi" wait_for 20 grep -q "mDNS discovery resumes" "$OUT/n1.err"
browse2() { timeout 5 "$LAB" exec 2 avahi-browse -rpt _shoal._tcp 2>/dev/null | grep -q "^=.*id=$ID1"; }
tap_check "node 1's service is published again" wait_for 20 browse2
tap_check "its links never dropped (heartbeats, not mDNS)" test "$(grep -c ' down ' "$OUT/n1.out")" = "$DOWNS_BEFORE"

# ---- clean stop: goodbye ----------------------------------------------------
T=$(now)
stop n2
tap_check "stopping node 2 says goodbye" wait_for 3 sh -c "grep -q 'down $ID2 peer said goodbye' $OUT/n1.out && grep -q 'down $ID2 peer said goodbye' $OUT/n3.out"
stop n1; stop n3; stop stranger

# ---- static peers, every avahi-daemon stopped -------------------------------
for i in 1 2 3; do "$LAB" avahi-stop $i; done
PEERS="--peer 198.18.0.1:$PORT --peer 198.18.0.2:$PORT --peer 198.18.0.3:$PORT"
T=$(now)
start s1 1 --cluster-key "$KEY" $PEERS
start s2 2 --cluster-key "$KEY" $PEERS
start s3 3 --cluster-key "$KEY" $PEERS
tap_check "static peers start without avahi" wait_for 20 all_ready s1 s2 s3
tap_check "...every pair" wait_for 20 all_linked "$T" s1 s2 s3
tap_diag "static, no avahi: start -> all pairs linked: $(elapsed "$T" "$(latest_up "$T" s1 s2 s3)") s"
tap_check "a missing avahi-daemon is one warning" test "$(grep -c 'avahi-daemon is not running' "$OUT/s1.err")" = 1
tap_check "each node recognised itself in the list" grep -q "is this node itself" "$OUT/s2.err"
sleep 1
tap_check "no flapping: one up per pair" sh -c "[ \$(grep -c ' up ' $OUT/s1.out) = 2 ] && [ \$(grep -c ' down ' $OUT/s1.out) = 0 ]"
stop s1; stop s2; stop s3
tap_check "every node exited cleanly on SIGTERM" test -z "$BAD_EXITS"
tap_check "no sanitizer reports" sh -c "! grep -l 'Sanitizer\|runtime error' $OUT/*.err"
tap_check "lab down" timeout 60 "$LAB" down
tap_done
