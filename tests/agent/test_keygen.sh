#!/bin/sh
# tests/agent/test_keygen.sh: `shoal keygen` as a user runs it.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

out=$("$SHOAL_BIN" keygen "$d/k"); rc=$?
tap_check "keygen writes a key" test $rc -eq 0 -a -f "$d/k"
tap_check "prints the fingerprint" sh -c "echo '$out' | grep -Eq 'fingerprint [0-9a-f]{16}'"
tap_check "64 hex digits and a newline" sh -c "grep -Eqx '[0-9a-f]{64}' '$d/k' && [ \$(wc -c <'$d/k') -eq 65 ]"
tap_check "mode 0600" test "$(stat -c %a "$d/k")" = 600
before=$(cat "$d/k")
"$SHOAL_BIN" keygen "$d/k" >/dev/null 2>"$d/err"; rc=$?
tap_check "refuses to overwrite (exit 1)" test $rc -eq 1 -a "$(cat "$d/k")" = "$before"
tap_check "says how to force" grep -q -- "--force" "$d/err"
"$SHOAL_BIN" keygen --force "$d/k" >/dev/null; rc=$?
tap_check "--force replaces it" test $rc -eq 0 -a "$(cat "$d/k")" != "$before"
"$SHOAL_BIN" keygen >/dev/null 2>&1; rc=$?
tap_check "no FILE is a usage error" test $rc -eq 2
"$SHOAL_BIN" keygen "$d/a" "$d/b" >/dev/null 2>&1; rc=$?
tap_check "two FILEs is a usage error" test $rc -eq 2 -a ! -e "$d/a"
"$SHOAL_BIN" keygen "$d/no/such/dir/k" >/dev/null 2>&1; rc=$?
tap_check "missing directory fails (exit 1)" test $rc -eq 1
(umask 000; "$SHOAL_BIN" keygen "$d/u" >/dev/null)
tap_check "mode 0600 even with umask 000" test "$(stat -c %a "$d/u")" = 600
tap_done
