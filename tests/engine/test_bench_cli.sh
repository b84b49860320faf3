#!/bin/sh
# tests/engine/test_bench_cli.sh: `shoal bench` runs and prints sane numbers
# (no timing assertion: speed is measured by bench/run, not by tests), and
# `shoal quantize` writes a folder `shoal bench` and `shoal logits` load.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"

fx="$SHOAL_SOURCE_ROOT/tests/fixtures/logits/qwen2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$SHOAL_BIN" bench --model "$fx" -p 8 -n 4 -t 1,2 -r 2 --json >"$tmp/out.json" 2>"$tmp/err"
rc=$?
tap_check "bench --json exits 0" test $rc -eq 0
[ $rc -eq 0 ] || tap_diag "$(cat "$tmp/err")"

check_json() {
    python3 - "$tmp/out.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 4, len(rows)                      # (pp, tg) x (1, 2 threads)
assert [(r["n_threads"], r["n_prompt"], r["n_gen"]) for r in rows] == \
    [(1, 8, 0), (1, 0, 4), (2, 8, 0), (2, 0, 4)], rows
for r in rows:
    assert len(r["samples_ts"]) == 2
    assert all(s > 0 for s in r["samples_ts"])
    assert min(r["samples_ts"]) <= r["avg_ts"] <= max(r["samples_ts"])
    assert r["stddev_ts"] >= 0
    assert r["model_size"] > 0 and r["model_n_params"] > 0
    assert r["dtype"] == "bf16" and r["model_type"] == "qwen2 bf16"
    assert r["bytes_per_token"] >= r["model_size"] * 0.5
    assert r["read_bw_gbps"] > 0.1 and r["limit_ts"] > 0
    if r["n_gen"]:
        assert 0 < r["limit_fraction"] == r["limit_fraction"]
PY
}
tap_check "JSON rows: tests, threads, samples, size, bandwidth, limit" check_json

"$SHOAL_BIN" bench --model "$fx" -p 4 -n 2 -t 1 -r 1 --kv-type f16 --no-bandwidth >"$tmp/out.txt" 2>"$tmp/err"
tap_check "text table with an f16 KV cache" grep -q "^| 1 | tg2 | " "$tmp/out.txt"
tap_check "the table names the KV cache type" grep -q "KV cache f16" "$tmp/out.txt"

usage() {
    "$SHOAL_BIN" bench "$@" >/dev/null 2>"$tmp/usage_err"
    [ $? -eq 2 ] && grep -q "shoal bench" "$tmp/usage_err"
}
tap_check "bad thread list exits 2" usage --model "$fx" -t 1,,2
tap_check "zero threads exits 2" usage --model "$fx" -t 0
tap_check "bad --kv-type exits 2" usage --model "$fx" --kv-type q8
tap_check "bad --act-bits exits 2" usage --model "$fx" --act-bits 4
tap_check "-p 0 -n 0 exits 2" usage --model "$fx" -p 0 -n 0
tap_check "bad -r exits 2" usage --model "$fx" -r 0

# shoal quantize -> a folder bench and logits load
"$SHOAL_BIN" quantize --model "$fx" --bits 4 --group-size 32 --out "$tmp/q4" >/dev/null 2>"$tmp/err"
rc=$?
tap_check "quantize exits 0" test $rc -eq 0
[ $rc -eq 0 ] || tap_diag "$(cat "$tmp/err")"
"$SHOAL_BIN" bench --model "$tmp/q4" -p 4 -n 2 -t 1 -r 1 --no-bandwidth --json >"$tmp/q4.json"
tap_check "bench runs the quantized model (q4)" grep -q '"dtype": "q4"' "$tmp/q4.json"
tap_check "JSON names 16-bit activation codes by default" grep -q '"act_bits": 16' "$tmp/q4.json"
"$SHOAL_BIN" bench --model "$tmp/q4" -p 4 -n 2 -t 1 -r 1 --no-bandwidth --act-bits 8 >"$tmp/a8.txt"
tap_check "bench --act-bits 8 runs and says so" \
    sh -c "grep -q '^| 1 | tg2 | ' '$tmp/a8.txt' && grep -q 'activation codes 8-bit' '$tmp/a8.txt'"
"$SHOAL_BIN" quantize --model "$fx" --bits 4 --out "$tmp/q4" >/dev/null 2>"$tmp/err"; rc=$?
tap_check "quantize onto an existing folder exits 1" test $rc -eq 1 -a -n "$(grep exists "$tmp/err")"
qusage() {
    "$SHOAL_BIN" quantize "$@" >/dev/null 2>"$tmp/usage_err"
    [ $? -eq 2 ] && grep -q "shoal quantize" "$tmp/usage_err"
}
tap_check "quantize --bits 3 exits 2" qusage --model "$fx" --bits 3 --out "$tmp/x"
tap_check "quantize --group-size 48 exits 2" qusage --model "$fx" --bits 4 --group-size 48 --out "$tmp/x"
tap_check "quantize without --out exits 2" qusage --model "$fx" --bits 8
tap_done
