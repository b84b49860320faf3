#!/bin/sh
# tests/election/test_pure.sh: the election core stays pure (DESIGN.md): its
# files include only libc and common/'s error and util headers, call no
# clock, RNG, logger, file or socket, and stay under ~800 lines each.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"

dir="$SHOAL_SOURCE_ROOT/election"
libc='assert|inttypes|stdarg|stdbool|stddef|stdint|stdio|stdlib|string'
for f in "$dir"/*.c "$dir"/*.h; do
    fname=$(basename "$f")
    bad=$(grep -E '^#include' "$f" | grep -vE "^#include <($libc)\.h>" |
          grep -vE '^#include "(common/(err|util)|election/[a-z_]+)\.h"')
    [ -n "$bad" ] && tap_diag "$fname: $bad"
    tap_check "$fname includes only libc and common/" test -z "$bad"
    n=$(wc -l < "$f")
    tap_check "$fname is $n lines (< 800)" test "$n" -lt 800
done
calls=$(grep -nE '(^|[^a-z_.>])(rand|srand|random|time|clock|clock_gettime|gettimeofday|sh_now_ns|sh_now_s|sh_log_write|SH_LOG|getenv|fopen|open|read|write|socket|printf|fprintf|puts|fputs)[[:space:]]*\(' "$dir"/*.c)
[ -n "$calls" ] && tap_diag "$calls"
tap_check "no clock, randomness, logging or I/O calls" test -z "$calls"
tap_done
