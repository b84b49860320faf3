#!/usr/bin/env python3
"""tests/summary.py LOG...: read meson testlog.json files and print the final
line "N passed, N failed", counting TAP test points. A test whose process
failed while all its points passed (a sanitizer report at exit, a timeout, a
crash before the plan) counts as one more failure."""
import json
import re
import sys

# Diagnostic lines shown per failing point (a YAML block can be long: its
# stack trace is cut, the error and the values come first).
DIAG_LINES = 16


def count(test):
    out = test.get("stdout") or ""
    ok = len(re.findall(r"^ok \d+", out, re.M))
    bad = len(re.findall(r"^not ok \d+", out, re.M))
    res = test.get("result", "")
    if res not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
        bad = 1
    if ok + bad == 0 and res == "OK":
        ok = 1
    return ok, bad, res


def failing_points(test):
    """The failing TAP points of a test (nested subtests' too) with the
    diagnostics that follow each, so that the end of a long CI log still says
    what failed: cmocka's "#" lines, or node:test's YAML block between "---"
    and "..." (its error, expected and actual values, and stack)."""
    lines = (test.get("stdout") or "").splitlines()
    out = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*not ok \d+", line):
            continue
        out.append(line.strip())
        in_yaml = False
        for diag in lines[i + 1:i + 1 + DIAG_LINES]:
            d = diag.strip()
            if d == "---" and not in_yaml:
                in_yaml = True
                continue
            if in_yaml and d == "...":
                break
            if not in_yaml and not d.startswith("#"):
                break
            out.append("  " + d[:300])
    return out


def main(paths):
    passed = failed = 0
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                test = json.loads(line)
                ok, bad, res = count(test)
                passed += ok
                failed += bad
                if bad:
                    print(f"FAILED: {test.get('name')} ({res}): "
                          f"{bad} failing point(s)")
                    for point in failing_points(test):
                        print(f"  {point}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
