#!/usr/bin/env python3
"""tests/test_summary.py: tests/summary.py on meson logs written here (TAP,
cmocka's and node:test's shapes): the counts, the final line, the exit
status, and the diagnostics it prints for each failing point."""
import json
import os
import subprocess
import sys
import tempfile

SUMMARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary.py")
NODE_FAIL = """TAP version 13
# Subtest: api
    # Subtest: chat
    not ok 1 - chat
      ---
      duration_ms: 3.2
      failureType: 'testCodeFailure'
      error: 'Expected values to be strictly equal: 1 !== 2'
      expected: 2
      actual: 1
      ...
    1..1
not ok 1 - api
  ---
  error: '1 subtest failed'
  ...
ok 2 - models
1..2
"""
CMOCKA_FAIL = "ok 1 - a\nnot ok 2 - b\n# ERROR: logits differ by 0.5\n# at x.c:10\nok 3 - c\n1..3\n"
n = 0
failed = 0


def check(name, cond):
    global n, failed
    n += 1
    print(("ok" if cond else "not ok") + f" {n} - {name}")
    failed += 0 if cond else 1


def run(tests):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        for t in tests:
            f.write(json.dumps(t) + "\n")
    try:
        p = subprocess.run([sys.executable, SUMMARY, f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    return p.returncode, p.stdout


rc, out = run([{"name": "pass", "result": "OK", "stdout": "ok 1 - a\nok 2 - b\n1..2\n"},
               {"name": "plain", "result": "OK", "stdout": ""}])
check("all passing: counts every point, a test without points as one",
      out.endswith("3 passed, 0 failed\n"))
check("all passing: exit status 0", rc == 0)

rc, out = run([{"name": "cm", "result": "FAIL", "stdout": CMOCKA_FAIL}])
check("cmocka failure: counted", out.endswith("2 passed, 1 failed\n"))
check("cmocka failure: exit status 1", rc == 1)
check("cmocka failure: its # lines shown",
      "# ERROR: logits differ by 0.5" in out and "# at x.c:10" in out)
check("cmocka failure: passing points not listed", "not ok 2 - b" in out and "ok 1 - a" not in out)

rc, out = run([{"name": "node", "result": "FAIL", "stdout": NODE_FAIL}])
check("node:test failure: top-level points counted", out.endswith("1 passed, 1 failed\n"))
check("node:test failure: the nested failing subtest shown", "not ok 1 - chat" in out)
check("node:test failure: its YAML error and values shown",
      "error: 'Expected values to be strictly equal: 1 !== 2'" in out and "actual: 1" in out)
check("node:test failure: the block ends at '...'", "1..1" not in out)

rc, out = run([{"name": "asan", "result": "FAIL", "stdout": "ok 1 - a\n1..1\n"}])
check("process failed with every point passing: one more failure",
      out.endswith("1 passed, 1 failed\n") and rc == 1)

print(f"1..{n}")
sys.exit(1 if failed else 0)
