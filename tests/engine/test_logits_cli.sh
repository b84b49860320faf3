#!/bin/sh
# tests/engine/test_logits_cli.sh: `shoal logits` against the reference
# top-5 ids and logits of a fixture model, and its usage errors.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"

fx="$SHOAL_SOURCE_ROOT/tests/fixtures/logits/qwen3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The reference's p1_len7 prompt (7 ids) and its expected top-5 per position.
ids=$(python3 -c "import json; p=json.load(open('$fx/reference.json'))['prompts'][1]; print(','.join(map(str, p['ids'])))")

"$SHOAL_BIN" logits --model "$fx" --ids "$ids" --out "$tmp/last.f32" --threads 2 >"$tmp/out.jsonl" 2>"$tmp/err"
rc=$?
tap_check "logits exits 0" test $rc -eq 0
[ $rc -eq 0 ] || tap_diag "$(cat "$tmp/err")"

check_lines() {
    python3 - "$fx/reference.json" "${1:-$tmp/out.jsonl}" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))["prompts"][1]
lines = [json.loads(l) for l in open(sys.argv[2])]
assert len(lines) == len(ref["ids"]), "one line per position"
for i, l in enumerate(lines):
    assert l["pos"] == i
    ids = [t[0] for t in l["top"]]
    assert ids == ref["top5_ids"][i], (i, ids, ref["top5_ids"][i])
    for (_, got), want in zip(l["top"], ref["top5_logits"][i]):
        assert abs(got - want) <= 1e-3, (i, got, want)
PY
}
tap_check "JSON lines match the reference top-5 ids and logits" check_lines

# Every set of kernels this CPU runs (SHOAL_KERNELS caps them) matches too.
for k in scalar avx2 avx512; do
    SHOAL_KERNELS=$k "$SHOAL_BIN" logits --model "$fx" --ids "$ids" --threads 2 >"$tmp/k.jsonl" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -q "cannot run them" "$tmp/err"; then
        tap_diag "kernels $k: not on this CPU or build, skipped"
        continue
    fi
    tap_check "SHOAL_KERNELS=$k matches the reference" check_lines "$tmp/k.jsonl"
done
SHOAL_KERNELS=avx3 "$SHOAL_BIN" logits --model "$fx" --ids 1 >/dev/null 2>"$tmp/err"
rc=$?
tap_check "an unknown SHOAL_KERNELS exits 2 naming the choices" \
    test $rc -eq 2 -a -n "$(grep 'SHOAL_KERNELS.*expected scalar, avx2 or avx512' "$tmp/err")"

check_out() {
    python3 - "$fx/p1_len7.last.f32" "$tmp/last.f32" <<'PY'
import struct, sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
assert len(a) == len(b), (len(a), len(b))
n = len(a) // 4
d = max(abs(x - y) for x, y in zip(struct.unpack("<%df" % n, a), struct.unpack("<%df" % n, b)))
assert d <= 1e-3, d
PY
}
tap_check "--out writes the last position's float32 logits" check_out

out=$("$SHOAL_BIN" logits --model "$fx" --ids 1,2 --top 3 --threads 1)
tap_check "--top 3 prints 3 pairs" test "$(echo "$out" | head -1 | grep -o '\],\[' | wc -l)" -eq 2

usage() {
    "$SHOAL_BIN" logits "$@" >/dev/null 2>"$tmp/usage_err"
    [ $? -eq 2 ] && grep -q "shoal logits" "$tmp/usage_err"
}
tap_check "missing --ids exits 2" usage --model "$fx"
tap_check "id outside the vocabulary exits 2" usage --model "$fx" --ids 1,1024
tap_check "malformed id exits 2" usage --model "$fx" --ids 1,x
tap_check "empty id exits 2" usage --model "$fx" --ids 1,,2
tap_check "negative id exits 2" usage --model "$fx" --ids -1
tap_check "unknown flag exits 2" usage --model "$fx" --ids 1 --frobnicate
tap_check "bad --top exits 2" usage --model "$fx" --ids 1 --top 0
tap_check "bad --threads exits 2" usage --model "$fx" --ids 1 --threads many
"$SHOAL_BIN" logits --model "$tmp/nonexistent" --ids 1 >/dev/null 2>"$tmp/err"; rc=$?
tap_check "missing model exits 1 naming it" test $rc -eq 1 -a -n "$(grep nonexistent "$tmp/err")"
tap_done
