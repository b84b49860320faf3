#!/bin/sh
# tests/state/test_pure.sh: the pure parts of state/ (STYLE.md: "pure cores
# include only libc and common/") touch no disk, clock, randomness or
# SQLite; only store.c does I/O.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
cd "$SHOAL_SOURCE_ROOT/state" || exit 1
for f in events.c apply.c export.c replay.c; do
    bad=$(grep -nE '#include <(sqlite3|event2/|sys/|unistd|fcntl|time)\.?h?|[^_a-z](rand|srand|time|clock_gettime|gettimeofday|getenv|fopen|open|read|write|sh_now_ns|sh_now_s)\(' "$f" \
          | grep -v '^\s*[0-9]*:\s*/\?\*')
    [ -n "$bad" ] && tap_diag "$f: $bad"
    tap_check "$f is pure" test -z "$bad"
done
bad=$(grep -lE 'sqlite3' events.c apply.c export.c replay.c internal.h state.h)
tap_check "only store.c speaks SQLite" test -z "$bad"
tap_done
