#!/bin/sh
# tests/node/run.sh FILE.test.mjs: runs one client test file with the
# official `openai` and `ollama` npm packages, at the exact versions of
# tests/node/package-lock.json, against agents the test file starts itself.
#
# The packages go into the build directory (never the source tree): `npm ci`
# runs there once per lockfile change, with its download cache beside it, so
# later runs (and machines with that cache) need no network. Output is TAP
# (node --test-reporter=tap), one top-level test point per test().
set -eu
here=$SHOAL_SOURCE_ROOT/tests/node
work=$(dirname "$SHOAL_BIN")/tests/node-clients
mkdir -p "$work"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "1..0 # SKIP node and npm are not installed (scripts/install-deps --test installs them)"
    exit 0
fi
# .installed is the lockfile of the last `npm ci` that succeeded.
if ! cmp -s "$here/package-lock.json" "$work/.installed"; then
    cp "$here/package.json" "$here/package-lock.json" "$work/"
    (cd "$work" && npm ci --cache "$work/npm-cache" --prefer-offline --no-audit --no-fund \
        --loglevel=error >&2)
    cp "$here/package-lock.json" "$work/.installed"
fi
# The test files import the packages from beside them.
cp "$here"/*.mjs "$work/"
cd "$work"
exec node --test-reporter=tap "$1"
