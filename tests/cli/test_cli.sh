#!/bin/sh
# tests/cli/test_cli.sh: the shoal binary's dispatch, help and exit codes.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"

out=$("$SHOAL_BIN" help); rc=$?
tap_check "help lists commands" test $rc -eq 0 -a -n "$(echo "$out" | grep '^  version ')"
"$SHOAL_BIN" >/dev/null 2>&1; rc=$?
tap_check "no command is a usage error (2)" test $rc -eq 2
"$SHOAL_BIN" frobnicate >/dev/null 2>&1; rc=$?
tap_check "unknown command exits 2" test $rc -eq 2
out=$("$SHOAL_BIN" version --help); rc=$?
tap_check "CMD --help prints usage" test $rc -eq 0 -a -n "$(echo "$out" | grep '^usage: shoal version')"
out=$("$SHOAL_BIN" --version)
tap_check "--version" test -n "$(echo "$out" | grep '^shoal [0-9]')"
# every listed command must have --help that starts with its usage line
for c in $("$SHOAL_BIN" help | awk '/^  [a-z]/ {print $1}'); do
    out=$("$SHOAL_BIN" "$c" --help 2>&1); rc=$?
    tap_check "$c --help" test $rc -eq 0 -a -n "$(echo "$out" | grep "^usage: shoal $c")"
done
tap_done
