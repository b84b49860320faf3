#!/bin/sh
# tests/bench/test_bench_tools.sh MEMBW: the benchmark tools under bench/.
# make-model's quantizer against the MLX fixtures, its determinism and its
# refusals (skipped without numpy, which only the bench tools need); the
# membw probe's command line; bench/run refusing a shoal without `bench`.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
membw=$1
mk="$SHOAL_SOURCE_ROOT/bench/make-model"
run="$SHOAL_SOURCE_ROOT/bench/run"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- membw: output shape and refusals (no timing asserted)
out=$("$membw" -t 1,2 -m 8 -r 2 --json); rc=$?
tap_check "membw --json prints one object per thread count" test $rc -eq 0 -a \
    "$(echo "$out" | grep -c '^{"threads": [12], "best_gbps": [0-9.]*, ')" -eq 2
"$membw" -t 0 >/dev/null 2>&1; rc=$?
tap_check "membw -t 0 is a usage error" test $rc -eq 2
"$membw" -t 1,x >/dev/null 2>&1; rc=$?
tap_check "membw -t 1,x is a usage error" test $rc -eq 2
out=$("$membw" -t 4 -m 2 2>&1); rc=$?
tap_check "membw: too small a buffer per thread is refused by name" \
    test $rc -eq 1 -a -n "$(echo "$out" | grep 'per thread')"

# ---- bench/run: a missing `shoal bench` is a clear failure, never a table
for fake in /bin/true /bin/false; do
    out=$("$run" --shoal "$fake" --out "$tmp/never.md" 2>&1); rc=$?
    tap_check "bench/run refuses $fake as shoal" \
        test $rc -ne 0 -a ! -e "$tmp/never.md" -a -n "$(echo "$out" | grep 'no `bench` command')"
done
out=$("$run" --no-shoal 2>&1); rc=$?
tap_check "bench/run --no-shoal needs LLAMA_BENCH" \
    test $rc -ne 0 -a -n "$(echo "$out" | grep 'LLAMA_BENCH')"

# ---- make-model (needs numpy)
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    tap_diag "SKIP make-model checks: /usr/bin/python3 has no numpy (apt-get install python3-numpy)"
    tap_done
fi
out=$("$mk" --check 2>&1); rc=$?
tap_check "make-model --check: quantizer byte-identical with tests/fixtures/mlx-quant" \
    test $rc -eq 0 -a -n "$(echo "$out" | grep 'all ok')"
[ $rc -eq 0 ] || tap_diag "$out"

"$mk" --shape tiny-qwen2 --out "$tmp/a" >/dev/null && "$mk" --shape tiny-qwen2 --out "$tmp/b" >/dev/null
tap_check "same arguments give byte-identical weights" cmp -s "$tmp/a/model.safetensors" "$tmp/b/model.safetensors"
"$mk" --shape tiny-qwen2 --seed 1 --out "$tmp/c" >/dev/null
tap_check "another seed gives other weights" test -n "$(cmp "$tmp/a/model.safetensors" "$tmp/c/model.safetensors" 2>&1)"

"$mk" --shape tiny-llama --max-shard-mb 0.1 --out "$tmp/sharded" >/dev/null
n=$(ls "$tmp/sharded" | grep -c '^model-[0-9]\{5\}-of-[0-9]\{5\}\.safetensors$')
tap_check "--max-shard-mb shards, with an index" test "$n" -ge 2 -a -f "$tmp/sharded/model.safetensors.index.json"
"$mk" --shape tiny-llama --bits 4 --out "$tmp/q4" >/dev/null
"$mk" --from "$tmp/sharded" --bits 4 --out "$tmp/q4from" >/dev/null
tap_check "4-bit variant = quantizing the (sharded) bf16 model" \
    cmp -s "$tmp/q4/model.safetensors" "$tmp/q4from/model.safetensors"
tap_check "4-bit config carries quantization and quantization_config" \
    test "$(grep -c '"bits": 4' "$tmp/q4/config.json")" -eq 2
"$mk" --shape tiny-qwen2 --bits 8 --out "$tmp/q8" >/dev/null
tap_check "8-bit index counts parameters as the float model has them" \
    grep -q '"total_parameters": ' "$tmp/q8/model.safetensors.index.json"

out=$("$mk" --from "$tmp/q4" --bits 8 --out "$tmp/qq" 2>&1); rc=$?
tap_check "an already quantized model is refused" \
    test $rc -ne 0 -a -n "$(echo "$out" | grep 'only dense, unquantized')"
out=$("$mk" --shape tiny-qwen2 --out "$tmp/a" 2>&1); rc=$?
tap_check "a non-empty --out without --force is refused" \
    test $rc -ne 0 -a -n "$(echo "$out" | grep 'not empty')"
mkdir -p "$tmp/bad" && cp "$tmp/a/config.json" "$tmp/bad/" && \
    printf '\377\377\377\377\0\0\0\0{}' > "$tmp/bad/model.safetensors"
out=$("$mk" --from "$tmp/bad" --bits 4 --out "$tmp/badq" 2>&1); rc=$?
tap_check "a safetensors header past the file's end is refused" \
    test $rc -ne 0 -a -n "$(echo "$out" | grep "past the file's end")"
h='{"model.norm.weight":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,6]}}'
{ printf "\\$(printf %03o ${#h})\\0\\0\\0\\0\\0\\0\\0"; printf '%s' "$h"; printf 'abcdef'; } \
    > "$tmp/bad/model.safetensors"
out=$("$mk" --from "$tmp/bad" --bits 4 --out "$tmp/badq2" 2>&1); rc=$?
tap_check "a tensor whose shape does not fill its offsets is refused" \
    test $rc -ne 0 -a -n "$(echo "$out" | grep 'does not fill 6 bytes')"
tap_done
