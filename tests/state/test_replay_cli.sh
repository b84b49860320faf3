#!/bin/sh
# tests/state/test_replay_cli.sh MKLOG STORE_WRITER: `shoal replay` end to end
# on data dirs made here: the crafted story (text, --json, --to), the
# default data dir, a log being written while it is read, the log of a
# writer killed with SIGKILL, and the errors a user can meet.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
MKLOG=$1
WRITER=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/shoal-replay-XXXXXX")
trap 'rm -rf "$T"' EXIT

mkdir "$T/story"
"$MKLOG" "$T/story"
tap_check "state_mklog builds the story" test $? -eq 0

out=$("$SHOAL_BIN" replay --data-dir "$T/story" 2>&1); rc=$?
tap_check "replay exits 0" test $rc -eq 0
has() { printf '%s\n' "$out" | grep -qF -- "$1"; }
tap_check "timeline line for a join" has "#3     term 1    2026-11-22T21:11:00.123Z  node_joined        node 3fa1c2d4… (lab1, 198.18.0.1:52416) joined: 2 cores, 3.8 GiB RAM (2.1 GiB free), models: kjv-llama-16m"
tap_check "rejected rows shown with the reason" has "REJECTED: event: unknown type \"gossip\""
tap_check "archived section with the reason" has "archived 2026-11-22T21:12:09.000Z: conflict with leader 77b2000000000001 term 2"
tap_check "folded state at the end" has "state at index 10 (10 entries replayed, 2 rejected):"
tap_check "leader in the state" has "leader: 77b20000… (lab2), term 2 (elected at #9)"
tap_check "uncommitted entries marked" has "left: silent for 10.0 s  [uncommitted]"

out=$("$SHOAL_BIN" replay --data-dir "$T/story" --to 4); rc=$?
tap_check "--to 4 stops at index 4" sh -c '[ '$rc' -eq 0 ] && printf "%s\n" "$1" | grep -q "^state at index 4 " && ! printf "%s\n" "$1" | grep -q "^#5 "' _ "$out"

"$SHOAL_BIN" replay --data-dir "$T/story" --json > "$T/story.json"; rc=$?
tap_check "--json exits 0" test $rc -eq 0
tap_check "--json is one document with entries, archived, state" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["entries"]) == 10, d.keys()
assert len(d["archived"]) == 2
assert d["archived"][0]["reason"].startswith("conflict with leader")
assert d["state"]["leader"]["term"] == 2
assert [n["name"] for n in d["state"]["nodes"]] == ["lab2"]
assert d["entries"][7]["applied"] is False and "gossip" in d["entries"][7]["reject"]
assert d["log"]["commit_index"] == 9
' "$T/story.json"

# the default data dir: $XDG_DATA_HOME/shoal, else ~/.local/share/shoal
mkdir -p "$T/xdg" "$T/home/.local/share"
cp -r "$T/story" "$T/xdg/shoal"
cp -r "$T/story" "$T/home/.local/share/shoal"
out=$(env XDG_DATA_HOME="$T/xdg" HOME=/nonexistent "$SHOAL_BIN" replay 2>&1); rc=$?
tap_check "default data dir from XDG_DATA_HOME" test $rc -eq 0 -a -n "$(printf '%s' "$out" | grep 'state at index 10')"
out=$(env -u XDG_DATA_HOME HOME="$T/home" "$SHOAL_BIN" replay 2>&1); rc=$?
tap_check "default data dir from HOME" test $rc -eq 0 -a -n "$(printf '%s' "$out" | grep 'state at index 10')"
out=$(env XDG_DATA_HOME=relative/dir HOME="$T/home" "$SHOAL_BIN" replay 2>&1); rc=$?
tap_check "a relative XDG_DATA_HOME is ignored (XDG spec)" test $rc -eq 0 -a -n "$(printf '%s' "$out" | grep 'state at index 10')"
out=$(env -u XDG_DATA_HOME -u HOME "$SHOAL_BIN" replay 2>&1); rc=$?
tap_check "no HOME, no XDG_DATA_HOME: exit 1, says --data-dir" test $rc -eq 1 -a -n "$(printf '%s' "$out" | grep 'use --data-dir')"

# a log being written while replay reads it (WAL reader beside the writer)
mkdir "$T/live"
"$WRITER" "$T/live" 7 > "$T/live.acks" &
wpid=$!
sleep 0.3
ok=0
for i in 1 2 3 4 5; do
    "$SHOAL_BIN" replay --data-dir "$T/live" > "$T/live.out" 2> "$T/live.err" || ok=1
    sleep 0.05
done
kill -9 $wpid 2>/dev/null; wait $wpid 2>/dev/null
tap_check "replay of a running node's log" test $ok -eq 0 -a -s "$T/live.out"
tap_check "its entries show (as rejected test rows)" grep -q 'REJECTED: event: unknown type "test"' "$T/live.out"
# ... and of the same log after the writer was killed (WAL not checkpointed)
"$SHOAL_BIN" replay --data-dir "$T/live" --json > "$T/killed.json" 2>&1; rc=$?
last=$(awk '$1 == "A" {a = $2} END {print a + 0}' "$T/live.acks")
tap_check "replay after kill -9 of the writer: exit 0" test $rc -eq 0
tap_check "... every acknowledged entry, contiguous from 1" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
idx = [e["index"] for e in d["entries"]]
assert idx == list(range(1, len(idx) + 1)), "not contiguous"
assert len(idx) >= int(sys.argv[2]) > 0, (len(idx), sys.argv[2])
' "$T/killed.json" "$last"

# errors a user can meet
out=$("$SHOAL_BIN" replay --data-dir "$T/nothing" 2>&1); rc=$?
tap_check "missing data dir: exit 1, names it" test $rc -eq 1 -a -n "$(printf '%s' "$out" | grep "data dir $T/nothing")"
mkdir "$T/empty"
out=$("$SHOAL_BIN" replay --data-dir "$T/empty" 2>&1); rc=$?
tap_check "no events.db: exit 1" test $rc -eq 1 -a -n "$(printf '%s' "$out" | grep 'no event log here')"
mkdir "$T/junk"; head -c 4096 /dev/urandom > "$T/junk/events.db"
out=$("$SHOAL_BIN" replay --data-dir "$T/junk" 2>&1); rc=$?
tap_check "random bytes: exit 1, not an SQLite database" test $rc -eq 1 -a -n "$(printf '%s' "$out" | grep 'not an SQLite database')"
"$SHOAL_BIN" replay --to 0 --data-dir "$T/story" >/dev/null 2>&1; rc=$?
tap_check "--to 0 is a usage error" test $rc -eq 2
"$SHOAL_BIN" replay --to x >/dev/null 2>&1; rc=$?
tap_check "--to x is a usage error" test $rc -eq 2
"$SHOAL_BIN" replay --frob >/dev/null 2>&1; rc=$?
tap_check "unknown option is a usage error" test $rc -eq 2
out=$("$SHOAL_BIN" replay --help); rc=$?
tap_check "--help" test $rc -eq 0 -a -n "$(printf '%s' "$out" | grep '^usage: shoal replay')"
tap_done
