#!/bin/sh
# tests/serve/test_serve_act_bits.sh: `--act-bits 8` reaches the generation
# of a served 4-bit model (shoal agent passes it to its runner) and of
# `shoal run`; the demo model quantized to 4 bits keeps its greedy answer
# under 8-bit activation codes; a bad value is a usage error (exit 2).
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/agent.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/serve.sh"

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

answer="For God so loved the world, that he gave his only begotten Son, that whosoever believeth in him should not perish, but have everlasting life."
"$SHOAL_BIN" quantize --model "$SHOAL_SOURCE_ROOT/models/kjv-llama-16m" --bits 4 \
    --out "$tmp/kjv4" >/dev/null 2>"$tmp/qerr"
tap_check "the demo model quantized to 4 bits" test -f "$tmp/kjv4/config.json"

"$SHOAL_BIN" run --model "$tmp/kjv4" --chat --prompt "Recite John 3:16" --temp 0 \
    --act-bits 8 >"$tmp/out" 2>"$tmp/err"
tap_check "shoal run --act-bits 8: exit 0" test $? -eq 0
printf '%s' "$answer" >"$tmp/want"
tap_check "shoal run --act-bits 8: the 4-bit model's greedy verse" cmp -s "$tmp/out" "$tmp/want"

usage() {
    "$SHOAL_BIN" "$@" >/dev/null 2>"$tmp/uerr"
    [ $? -eq 2 ] && grep -q -- "--act-bits: 16 or 8" "$tmp/uerr"
}
tap_check "shoal run --act-bits 4: 2" usage run --prompt a --act-bits 4
tap_check "shoal agent --act-bits x: 2" usage agent --act-bits x
tap_check "shoal runner --act-bits 12: 2" usage runner --fd 3 --model "$tmp/kjv4" --act-bits 12

start_agent a --model "$tmp/kjv4" --slots 1 --act-bits 8
st=$?
A=$PORT; pids="$pids $PID"
tap_check "agent --act-bits 8 serves the 4-bit model" test $st -eq 0
rpid=$(health_field "$A" 'h["models"][0]["pid"]')
tap_check "its runner was started with --act-bits 8" \
    sh -c "tr '\\0' ' ' < /proc/$rpid/cmdline | grep -q -- '--act-bits 8'"
code=$(curl -s -m 60 -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$A/v1/chat/completions" \
    -H 'Content-Type: application/json' \
    -d '{"model":"kjv4","messages":[{"role":"user","content":"Recite John 3:16"}],"temperature":0}')
tap_check "chat through the API: 200" test "$code" = 200
got=$(json_get "$tmp/body" 'j["choices"][0]["message"]["content"]')
tap_check "chat through the API: the greedy verse" test "$got" = "$answer"
tap_done
