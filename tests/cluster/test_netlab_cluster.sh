#!/bin/bash
# tests/cluster/test_netlab_cluster.sh DELAYLINE: the control plane on three
# lab hosts (network namespaces, each with its own avahi-daemon; see
# tests/netlab/lab), real `shoal agent` processes observed through their
# HTTP API (curl inside each namespace):
#   A  agents start with every cable out: each bootstraps alone;
#   B  plug all -> one leader, all three agree on leader/term/members (timed);
#   C  a stranger with another cluster key is never admitted;
#   D  kill -9 the leader -> a new leader (timed), no committed entry lost;
#      the killed node restarts and catches up; SIGTERM on the leader ->
#      leadership handed over (timed);
#   E  unplug a follower -> removed after the removal timeout (timed);
#      replug -> it rejoins (timed);
#   F  two nodes left, one unplugged -> each side goes on in a new epoch
#      (timed); replug -> one lineage, the loser's tail archived;
#   G  `shoal replay` of host 1's data dir tells that whole story;
#   H  static peers with every avahi-daemon stopped -> the cluster forms.
# Needs root; fails (never skips) when namespaces cannot be made. Every wait
# is bounded. Agent logs are printed when a check fails.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/netlab.sh"
export LAB_DELAYLINE=${1:?usage: test_netlab_cluster.sh DELAYLINE}
LAB="$SHOAL_SOURCE_ROOT/tests/netlab/lab"
J="python3 $SHOAL_SOURCE_ROOT/tests/lib/shoal_json.py"
export LAB_PREFIX="tc$((RANDOM % 100000))"
REMOVAL_S=8 # the agent's removal timeout (agent/cluster.c)

netlab_require

OUT=$(mktemp -d)
chmod 755 "$OUT" # the agents run as root too, but keep it readable for debugging
declare -A PID
cleanup() {
    local p
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null; done
    "$LAB" down >/dev/null 2>&1
    if [ "$TAP_FAILED" -gt 0 ]; then
        for f in "$OUT"/*.log; do echo "# ---- $f"; tail -60 "$f" | sed 's/^/# /'; done
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT
api() { "$LAB" exec "$1" curl -s -m 2 "http://127.0.0.1:${3:-52415}$2"; }
summary() { api "$1" /state | $J summary; } # ROLE LEADER TERM EPOCH MEMBERS NODES COMMIT

# start_agent NAME HOST DATADIR ARGS...: a shoal agent in lab host HOST
start_agent() {
    local name=$1 host=$2 dir=$3; shift 3
    "$LAB" exec "$host" "$SHOAL_BIN" agent --data-dir "$dir" --name "$name" --bind 0.0.0.0 "$@" \
        2>>"$OUT/$name.log" &
    PID[$name]=$!
}
BAD_EXITS=""
stop_agent() { # NAME: SIGTERM, bounded wait, note a non-zero exit
    kill -TERM "${PID[$1]}" 2>/dev/null
    reap_agent "$1"
}
reap_agent() { # NAME: (after a SIGTERM) bounded wait, note a non-zero exit
    local p=${PID[$1]} rc
    wait_for 10 sh -c "! kill -0 $p 2>/dev/null"
    wait "$p" 2>/dev/null; rc=$?
    [ "$rc" = 0 ] || BAD_EXITS="$BAD_EXITS $1:$rc"
    unset "PID[$1]"
}
role_is() { [ "$(api "$1" /health | $J get role)" = "$2" ]; }
all_lead_alone() { local i; for i in "$@"; do role_is "$i" leader || return 1; done; }
count() { [ "$1" = - ] && echo 0 || echo "$1" | tr ',' '\n' | wc -l; }

# agreed N HOSTS...: every host answers; one leader among them; all agree
# on leader, term, epoch, members and registered nodes; N of each.
agreed() {
    local n=$1 i ref="" leaders=0 role leader term epoch members nodes commit; shift
    for i in "$@"; do
        read -r role leader term epoch members nodes commit <<<"$(summary "$i")"
        [ "$role" = - ] || [ "$leader" = - ] && return 1
        [ "$role" = leader ] && leaders=$((leaders + 1))
        [ "$(count "$members")" = "$n" ] && [ "$(count "$nodes")" = "$n" ] || return 1
        [ -z "$ref" ] && ref="$leader $term $epoch $members $nodes"
        [ "$ref" = "$leader $term $epoch $members $nodes" ] || return 1
    done
    [ "$leaders" = 1 ]
}
host_of() { # node id -> host number (1..3), from the agents' own ids
    local i; for i in 1 2 3; do [ "${ID[$i]}" = "$1" ] && echo "$i"; done
}
leader_host() { host_of "$(api "$1" /health | $J get leader.id)"; }

tap_check "lab up 3" timeout 90 "$LAB" up 3
for i in 1 2 3; do "$LAB" unplug $i; done
"$SHOAL_BIN" keygen "$OUT/cluster.key" >/dev/null
"$SHOAL_BIN" keygen "$OUT/other.key" >/dev/null

# ---- A: cables out at start ---------------------------------------------
for i in 1 2 3; do start_agent "h$i" $i "$OUT/d$i" --cluster-key "$OUT/cluster.key"; done
tap_check "A: with cables out each agent bootstraps alone" wait_for 30 all_lead_alone 1 2 3
declare -A ID
for i in 1 2 3; do ID[$i]=$(api $i /health | $J get node_id); done
each_alone() { agreed 1 1 && agreed 1 2 && agreed 1 3; }
tap_check "A: ...a cluster of one each" each_alone

# ---- B: plug ------------------------------------------------------------
T=$(now)
for i in 1 2 3; do "$LAB" plug $i; done
tap_check "B: plug -> one leader, all agree on leader/term/members" wait_for 40 agreed 3 1 2 3
JOIN=$(elapsed "$T" "$(now)")
tap_diag "plug -> joined (one leader, 3 members and 3 nodes on every host): $JOIN s"
tap_check "B: exactly one leader" test "$(for i in 1 2 3; do api $i /health | $J get role; done | grep -c leader)" = 1
leader_api_named() {
    local i; for i in 1 2 3; do
        api $i /nodes | $J get leader.api | grep -q '^198\.18\.0\.[123]:52415$' || return 1
    done
}
tap_check "B: every answer (followers' too) names the leader's API address" leader_api_named

# ---- C: a stranger with another key -------------------------------------
start_agent stranger 3 "$OUT/ds" --cluster-key "$OUT/other.key" --api-port 52425 \
    --peer-port 52426 --peer 198.18.0.1 --peer 198.18.0.2
stranger_leads() { [ "$(api 3 /health 52425 | $J get role)" = leader ]; }
tap_check "C: the stranger runs (a cluster of its own)" wait_for 20 stranger_leads
SID=$(api 3 /health 52425 | $J get node_id)
sleep 3
tap_check "C: ...and is never admitted: still 3 members, 3 nodes" agreed 3 1 2 3
unlisted() { local i; for i in 1 2 3; do api $i /nodes | grep -q "$1" && return 1; done; return 0; }
tap_check "C: ...nobody lists it" unlisted "$SID"
tap_check "C: its direct dials were refused (cluster key)" \
    grep -q "did not prove our cluster key" "$OUT/h1.log"
stop_agent stranger

# ---- D: kill -9 the leader ------------------------------------------------
L=$(leader_host 1)
S=$(for i in 1 2 3; do [ "$i" != "$L" ] && echo $i; done | tr '\n' ' ')
api "$L" "/events?since=0&limit=1000" >"$OUT/before-kill.json"
C=$($J get commit_index "$OUT/before-kill.json")
T=$(now)
kill -9 "${PID[h$L]}"
wait "${PID[h$L]}" 2>/dev/null
unset "PID[h$L]"
new_leader() { # HOSTS...: all name the same leader, not the old one, and it says so
    local i l="" x
    for i in "$@"; do
        x=$(api "$i" /health | $J get leader.id)
        [ "$x" = - ] || [ "$x" = "${ID[$L]}" ] && return 1
        [ -z "$l" ] && l=$x
        [ "$x" = "$l" ] || return 1
    done
    role_is "$(host_of "$l")" leader
}
# shellcheck disable=SC2086
tap_check "D: kill -9 the leader (host $L) -> a new leader" wait_for 20 new_leader $S
tap_diag "leader kill -9 -> new leader: $(elapsed "$T" "$(now)") s"
for i in $S; do api "$i" "/events?since=0&limit=1000" >"$OUT/after-kill$i.json"; done
# shellcheck disable=SC2086
tap_check "D: every entry committed before the kill (#1..#$C) is on both survivors" \
    $J entries-match "$C" "$OUT/before-kill.json" $(for i in $S; do echo "$OUT/after-kill$i.json"; done)
T=$(now)
start_agent "h$L" "$L" "$OUT/d$L" --cluster-key "$OUT/cluster.key"
tap_check "D: the killed node restarts and catches up" wait_for 30 agreed 3 1 2 3
tap_diag "restart after kill -9 -> in sync: $(elapsed "$T" "$(now)") s"
# SIGTERM on the leader: it hands leadership over before it stops
L=$(leader_host 1)
S=$(for i in 1 2 3; do [ "$i" != "$L" ] && echo $i; done | tr '\n' ' ')
T=$(now)
kill -TERM "${PID[h$L]}"
# shellcheck disable=SC2086
tap_check "D: SIGTERM on the leader (host $L) -> a new leader" wait_for 20 new_leader $S
tap_diag "leader SIGTERM -> new leader (handed over): $(elapsed "$T" "$(now)") s"
reap_agent "h$L"
tap_check "D: ...it handed leadership over before stopping" \
    grep -q "leadership handed over; stopping" "$OUT/h$L.log"
start_agent "h$L" "$L" "$OUT/d$L" --cluster-key "$OUT/cluster.key"
tap_check "D: ...and rejoins when restarted" wait_for 30 agreed 3 1 2 3

# ---- E: unplug a follower: removal, then rejoin --------------------------
L=$(leader_host 1)
F=$(for i in 3 2 1; do [ "$i" != "$L" ] && echo $i; done | head -1)
removed() { # leader host, removed host
    local role leader term epoch members nodes commit
    read -r role leader term epoch members nodes commit <<<"$(summary "$1")"
    [ "$(count "$members")" = 2 ] && [ "$(count "$nodes")" = 2 ] &&
        ! grep -q "${ID[$2]}" <<<"$members $nodes"
}
T=$(now)
"$LAB" unplug "$F"
tap_check "E: unplug host $F -> removed (member and node)" wait_for 40 removed "$L" "$F"
REMOVE=$(elapsed "$T" "$(now)")
tap_diag "unplug -> removed: $REMOVE s (link timeout 1.5 s, removal timeout ${REMOVAL_S} s)"
# The timeout counts from the last reply heard, which may precede the unplug
# by one heartbeat (0.2 s): on a fast machine the removal shows at 7.8 s.
tap_check "E: ...not before the removal timeout (less one heartbeat)" \
    awk -v t="$REMOVE" -v r="$REMOVAL_S" 'BEGIN { exit !(t >= r - 0.25) }'
T=$(now)
"$LAB" plug "$F"
tap_check "E: replug -> it rejoins" wait_for 40 agreed 3 1 2 3
tap_diag "replug -> rejoined: $(elapsed "$T" "$(now)") s"

# ---- F: two nodes; one unplugged -> a new epoch on each side --------------
L=$(leader_host 1)
G=$(for i in 3 2; do [ "$i" != "$L" ] && echo $i; done | head -1) # stopped (never host 1)
stop_agent "h$G"
X=1
Y=$(for i in 2 3; do [ "$i" != "$G" ] && echo $i; done | head -1)
tap_check "F: host $G stopped cleanly -> removed, two nodes left" wait_for 40 agreed 2 $X $Y
E0=$(api $X /health | $J get epoch)
alone_in_new_epoch() { # host: leads a new epoch whose only member is itself
    local role leader term epoch members nodes commit
    read -r role leader term epoch members nodes commit <<<"$(summary "$1")"
    [ "$role" = leader ] && [ "$epoch" != - ] && [ "$epoch" -gt "$E0" ] &&
        [ "$members" = "${ID[$1]}" ] && [ "$nodes" = "${ID[$1]}" ]
}
T=$(now)
"$LAB" unplug "$Y"
tap_check "F: unplug host $Y -> host $X leads a new epoch alone, and commits in it" \
    wait_for 40 alone_in_new_epoch $X
tap_diag "two nodes, unplug one -> the other leads a new epoch: $(elapsed "$T" "$(now)") s"
tap_check "F: ...so does host $Y on its side" wait_for 20 alone_in_new_epoch $Y
T=$(now)
TW=$(date +%s%3N)
"$LAB" plug "$Y"
tap_check "F: replug -> one lineage: one leader, both members" wait_for 40 agreed 2 $X $Y
tap_diag "replug after the split -> one lineage: $(elapsed "$T" "$(now)") s"
for i in $X $Y; do api $i "/events?since=0&limit=1000" >"$OUT/merged$i.json"; done
CM=$($J get commit_index "$OUT/merged$X.json")
tap_check "F: ...identical committed logs" $J entries-match "$CM" "$OUT/merged$X.json" "$OUT/merged$Y.json"
lost_tail() { # host: archived entries of the lost lineage since the replug
    "$SHOAL_BIN" replay --data-dir "$OUT/d$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any("lost the epoch merge" in a["reason"] and a["archived_at_ms"] >= int(sys.argv[1])
                  for a in d["archived"]) else 1)' "$TW"
}
lost_either() { lost_tail $X || lost_tail $Y; }
tap_check "F: the losing side's tail is archived, not deleted" lost_either

# ---- G: the story in host 1's log -------------------------------------------
"$SHOAL_BIN" replay --data-dir "$OUT/d1" >"$OUT/replay1.txt" 2>&1
"$SHOAL_BIN" replay --data-dir "$OUT/d1" --json >"$OUT/replay1.json" 2>&1
log_ok() { $J log-ok "$1" >/dev/null; }
tap_check "G: shoal replay reads host 1's log while the agent runs" log_ok "$OUT/replay1.json"
tap_check "G: ...and tells the story in order" $J story "$OUT/replay1.json" \
    epoch_started node_joined member_added leader_elected member_removed node_left member_added \
    member_removed epoch_started/1 epoch_started/2 node_joined
merges_archived() {
    local i; for i in 1 2 3; do "$SHOAL_BIN" replay --data-dir "$OUT/d$i"; done |
        grep -q 'archived .*lost the epoch merge'
}
tap_check "G: ...with entries archived by a lost merge" merges_archived
sed -n '1,/^archived entries/p' "$OUT/replay1.txt" | cut -c1-160 | sed 's/^/# /'

# ---- H: static peers, every avahi-daemon stopped ---------------------------
for n in "h$X" "h$Y"; do stop_agent "$n"; done
for i in 1 2 3; do "$LAB" avahi-stop $i; done
PEERS="--peer 198.18.0.1 --peer 198.18.0.2 --peer 198.18.0.3"
T=$(now)
# shellcheck disable=SC2086
for i in 1 2 3; do start_agent "s$i" $i "$OUT/s$i" --cluster-key "$OUT/cluster.key" $PEERS; done
tap_check "H: static peers, no avahi -> one cluster of three" wait_for 40 agreed 3 1 2 3
tap_diag "static peers, no avahi: start -> joined: $(elapsed "$T" "$(now)") s"
tap_check "H: a missing avahi-daemon is a warning" grep -q "avahi-daemon is not running" "$OUT/s1.log"
for n in s1 s2 s3; do stop_agent "$n"; done
tap_check "every agent stopped cleanly on SIGTERM (exit 0)" test -z "$BAD_EXITS"
tap_check "no sanitizer reports" sh -c "! grep -l 'Sanitizer\|runtime error' $OUT/*.log"
tap_check "lab down" timeout 60 "$LAB" down
tap_done
