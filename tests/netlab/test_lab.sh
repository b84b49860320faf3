#!/bin/bash
# tests/netlab/test_lab.sh DELAYLINE: the lab itself: hosts up with their own
# avahi, reachability, mDNS across hosts, cable pull and replug, shaping
# (delay line and rate), avahi stop/start, and a down that leaves nothing.
# Needs root and network namespaces; fails (does not skip) without them.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/netlab.sh"
LAB="$SHOAL_SOURCE_ROOT/tests/netlab/lab"
export LAB_DELAYLINE=${1:?usage: test_lab.sh DELAYLINE}
export LAB_PREFIX="tl$((RANDOM % 100000))"

netlab_require
trap '"$LAB" down >/dev/null 2>&1' EXIT
T0=$(date +%s.%N)

tap_check "up 2" timeout 60 "$LAB" up 2
tap_check "host 1 reaches host 2" sh -c "timeout 10 '$LAB' exec 1 ping -c 1 -W 2 198.18.0.2 >/dev/null"
tap_check "hosts are isolated from the root namespace" \
    sh -c '! ip -o addr show | grep -q "198\.18\.0\."'

# mDNS across hosts: publish on 1, find it from 2 (bounded)
"$LAB" exec 1 avahi-publish -s labtest _shoal._tcp 4000 id=x >/dev/null 2>&1 &
pub=$!
found() {
    local i
    for i in $(seq 20); do
        timeout 5 "$LAB" exec 2 avahi-browse -rpt _shoal._tcp 2>/dev/null | grep -q '^=.*labtest' && return 0
        sleep 0.5
    done
    return 1
}
tap_check "a service published on host 1 resolves on host 2" found
kill "$pub" 2>/dev/null; wait "$pub" 2>/dev/null

rtt() { # host addr -> average RTT in ms
    timeout 20 "$LAB" exec "$1" ping -c 5 -i 0.05 -W 2 -q "$2" 2>/dev/null |
        awk -F/ '/^rtt/ {print $5}'
}
tap_check "shape 2 2ms adds the delay both ways" timeout 10 "$LAB" shape 2 2ms none
r=$(rtt 1 198.18.0.2); tap_diag "RTT shaped: ${r:-none} ms"
tap_check "RTT through the delay line >= 4 ms" awk -v r="${r:-0}" 'BEGIN { exit !(r >= 4.0) }'
tap_check "unshape" "$LAB" unshape 2
r=$(rtt 1 198.18.0.2); tap_diag "RTT unshaped: ${r:-none} ms"
tap_check "RTT back under 2 ms" awk -v r="${r:-99}" 'BEGIN { exit !(r > 0 && r < 2.0) }'
tap_check "shape with a rate installs tbf" \
    sh -c "'$LAB' shape 2 0 100mbit && ip netns exec ${LAB_PREFIX}h2 tc qdisc show dev eth0 | grep -q tbf"
"$LAB" unshape 2

tap_check "unplug 2: host 2 unreachable" sh -c "'$LAB' unplug 2 && ! timeout 10 '$LAB' exec 1 ping -c 1 -W 1 198.18.0.2 >/dev/null"
tap_check "host 2 sees no carrier" sh -c "ip -n ${LAB_PREFIX}h2 link show eth0 | grep -q NO-CARRIER"
tap_check "plug 2: reachable again" sh -c "'$LAB' plug 2 && timeout 10 '$LAB' exec 1 ping -c 1 -W 2 198.18.0.2 >/dev/null"
tap_check "shaped cable can still be pulled" sh -c "'$LAB' shape 2 1ms none && '$LAB' unplug 2 && ! timeout 10 '$LAB' exec 1 ping -c 1 -W 1 198.18.0.2 >/dev/null && '$LAB' plug 2 && timeout 10 '$LAB' exec 1 ping -c 2 -W 2 198.18.0.2 >/dev/null && '$LAB' unshape 2"

tap_check "avahi-stop 1" sh -c "'$LAB' avahi-stop 1 && '$LAB' status | grep '${LAB_PREFIX}h1 ' | grep -q 'avahi= '"
tap_check "avahi-start 1" sh -c "timeout 30 '$LAB' avahi-start 1 && '$LAB' status | grep '${LAB_PREFIX}h1 ' | grep -qv 'avahi= '"

# something left running by exec must not keep the lab alive
"$LAB" exec 1 sleep 600 >/dev/null 2>&1 &
tap_check "down" timeout 60 "$LAB" down
tap_check "nothing left" sh -c "! ip netns list | grep -q '^${LAB_PREFIX}' && [ ! -e /run/shoal-lab/$LAB_PREFIX ]"
tap_check "down again is fine" "$LAB" down
tap_diag "whole lab test: $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
tap_done
