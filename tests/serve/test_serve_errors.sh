#!/bin/sh
# tests/serve/test_serve_errors.sh: every error path of the API in front of
# real runners (issue 6 item 4), raw HTTP with curl: bodies over the limit
# (413), malformed JSON, wrong types, unknown models (both dialects), a prompt
# longer than the context, a full queue (503 + Retry-After), the API key,
# CORS, a model that cannot load, a client that disconnects, a runner killed
# mid-stream (the client gets an error, the runner comes back), and no
# runner outliving its agent.
#
# Long generations come from the runner's documented test aid: prompts
# containing LONGTEXT are answered with forced tokens ("amen " x 400, no stop
# token; sampling goes on after them up to max_tokens), so a request runs
# for a while on any build. Everything else is the
# demo model sampling as usual.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/agent.sh"
. "$SHOAL_SOURCE_ROOT/tests/lib/serve.sh"

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    [ -n "$KEEP" ] && return; rm -rf "$tmp"
}
trap cleanup EXIT

long=$(python3 -c 'print("amen " * 400, end="")')
SHOAL_TEST_FORCE_RULES="[{\"match\": \"LONGTEXT\", \"output\": \"$long\"}]"
export SHOAL_TEST_FORCE_RULES
demo=$SHOAL_SOURCE_ROOT/models/kjv-llama-16m
broken=$SHOAL_SOURCE_ROOT/tests/fixtures/logits/llama # weights, but no tokenizer.json

# post PATH BODY [CURL ARGS...]: POST to agent A; body in $tmp/body, headers
# in $tmp/hdr, status in $code.
post() {
    _path=$1; _body=$2; shift 2
    code=$(curl -s -m 60 -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' \
        -H 'Content-Type: application/json' "$@" --data-binary "$_body" \
        "http://127.0.0.1:$PORT$_path")
}
body_is() { [ "$(json_get "$tmp/body" "$1")" = "$2" ]; }
body_has() { grep -q "$1" "$tmp/body"; }

# ---- agent A: the demo model (two slots) and a broken model
start_agent a --model "$demo" --model "$broken" --slots 2
st=$?
A=$PORT; APID=$PID; pids="$pids $APID"
tap_check "agent with a broken model starts and answers" test $st -eq 0
tap_check "broken model: reported failed, naming the missing file" \
    wait_health "$A" '[m for m in h["models"] if m["id"] == "llama"][0]["state"] == "failed" and "tokenizer.json" in [m for m in h["models"] if m["id"] == "llama"][0]["error"]' 5
tap_check "demo model is ready beside it" \
    wait_health "$A" '[m for m in h["models"] if m["id"] == "kjv-llama-16m"][0]["state"] == "ready"' 5
post /v1/chat/completions '{"model":"llama","messages":[{"role":"user","content":"hi"}]}'
tap_check "broken model: OpenAI 500 with its load error" \
    sh -c "[ $code = 500 ] && grep -q 'tokenizer.json' '$tmp/body'"
post /api/generate '{"model":"llama","prompt":"hi"}'
tap_check "broken model: Ollama 500 {\"error\"}" \
    sh -c "[ $code = 500 ] && python3 -c 'import json,sys; assert \"unavailable\" in json.load(open(sys.argv[1]))[\"error\"]' '$tmp/body'"

# 413: a body over the 8 MiB limit, both dialects.
python3 -c 'import sys; sys.stdout.write("{\"model\":\"kjv-llama-16m\",\"prompt\":\"" + "a" * (9 << 20) + "\"}")' > "$tmp/big.json"
code=$(curl -s -m 60 -o "$tmp/body" -w '%{http_code}' --data-binary @"$tmp/big.json" "http://127.0.0.1:$A/v1/completions")
tap_check "body over the limit: 413 (OpenAI)" test "$code" = 413
tap_check "413 body is an OpenAI error" body_is 'j["error"]["type"]' invalid_request_error
code=$(curl -s -m 60 -o "$tmp/body" -w '%{http_code}' --data-binary @"$tmp/big.json" "http://127.0.0.1:$A/api/generate")
tap_check "body over the limit: 413 (Ollama), {\"error\": ...}" \
    sh -c "[ $code = 413 ] && python3 -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1]))[\"error\"], str)' '$tmp/body'"

# Malformed JSON and wrong types.
post /v1/chat/completions '{"model": "kjv-llama-16m", "messages": [}'
tap_check "malformed JSON: 400 invalid_json (OpenAI)" sh -c "[ $code = 400 ] && grep -q invalid_json '$tmp/body'"
post /api/chat '{"model": "kjv-llama-16m", '
tap_check "malformed JSON: 400 (Ollama)" test "$code" = 400
post /v1/chat/completions '{"model":"kjv-llama-16m","messages":"hello"}'
tap_check "messages not an array: 400 naming the parameter" body_is 'j["error"]["param"]' messages
post /v1/chat/completions '{"model":"kjv-llama-16m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}'
tap_check "temperature a string: 400 invalid_type" sh -c "[ $code = 400 ] && grep -q invalid_type '$tmp/body'"
post /api/generate '{"model":"kjv-llama-16m","prompt":"x","options":{"num_predict":"many"}}'
tap_check "Ollama option of the wrong type: 400" sh -c "[ $code = 400 ] && grep -q num_predict '$tmp/body'"
post /v1/completions '{"model":42,"prompt":"x"}'
tap_check "model a number: 400" test "$code" = 400

# Unknown model, both dialects.
post /v1/chat/completions '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}'
tap_check "unknown model: 404 model_not_found (OpenAI)" body_is 'j["error"]["code"]' model_not_found
post /api/chat '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}'
tap_check "unknown model: 404 (Ollama)" sh -c "[ $code = 404 ] && grep -q \"model 'no-such-model' not found\" '$tmp/body'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$A/v1/models/nope")
tap_check "GET /v1/models/nope: 404" test "$code" = 404

# Things the model cannot do: 400, not a silent answer.
post /v1/chat/completions '{"model":"kjv-llama-16m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}'
tap_check "tools for a model without a tool format: 400" sh -c "[ $code = 400 ] && grep -q 'does not support tools' '$tmp/body'"
post /api/chat '{"model":"kjv-llama-16m","messages":[{"role":"user","content":"x"}],"think":true}'
tap_check "think for a model without thinking: 400" sh -c "[ $code = 400 ] && grep -q 'does not support thinking' '$tmp/body'"

# A client that goes away: its generation is cancelled at the next token
# and the slot is free again.
curl -s -m 1 -N "http://127.0.0.1:$A/v1/completions" \
    -d '{"model":"kjv-llama-16m","prompt":"LONGTEXT","max_tokens":2000,"stream":true}' > /dev/null 2>&1
tap_check "disconnect: the agent logs the cancel" \
    sh -c "sleep 0.5; grep -q 'cancelled (client gone)' '$tmp/a.log'"
tap_check "disconnect: the slot is free again" \
    wait_health "$A" 'h["models"][0]["busy"] == 0 and h["models"][0]["queued"] == 0' 10

# Four concurrent greedy requests answer exactly what they answer alone.
for i in 1 2 3 4; do
    post /v1/completions "{\"model\":\"kjv-llama-16m\",\"prompt\":\"And it came to pass $i\",\"temperature\":0,\"max_tokens\":24}"
    cp "$tmp/body" "$tmp/seq$i"
done
cps=""
for i in 1 2 3 4; do
    curl -s -m 60 -o "$tmp/par$i" "http://127.0.0.1:$A/v1/completions" \
        -d "{\"model\":\"kjv-llama-16m\",\"prompt\":\"And it came to pass $i\",\"temperature\":0,\"max_tokens\":24}" &
    cps="$cps $!"
done
for c in $cps; do wait "$c"; done
same=yes
for i in 1 2 3 4; do
    a=$(json_get "$tmp/seq$i" 'j["choices"][0]["text"]'); b=$(json_get "$tmp/par$i" 'j["choices"][0]["text"]')
    [ -n "$a" ] && [ "$a" = "$b" ] || same=no
done
tap_check "4 concurrent requests (2 slots): each answer equals its answer alone" test $same = yes

# A runner killed mid-stream: the client gets an error (not a hang), the
# runner is restarted, the next request works.
rpid=$(health_field "$A" '[m for m in h["models"] if m["id"] == "kjv-llama-16m"][0]["pid"]')
curl -s -m 60 -N "http://127.0.0.1:$A/v1/chat/completions" \
    -d '{"model":"kjv-llama-16m","messages":[{"role":"user","content":"LONGTEXT"}],"max_tokens":2000,"stream":true}' \
    > "$tmp/crash.sse" 2>&1 &
cpid=$!
wait_health "$A" 'h["models"][0]["busy"] == 1' 10
sleep 0.3
kill -9 "$rpid"
wait_exit $cpid 20; st=$EXIT_STATUS
tap_check "runner killed: the streaming client ends, no hang" test "$st" != 124
tap_check "runner killed: the stream carries an error naming the signal" \
    grep -q '"error".*killed by signal 9' "$tmp/crash.sse"
tap_check "runner killed: restarted with a new pid" \
    wait_health "$A" "h['models'][0]['state'] == 'ready' and h['models'][0]['pid'] not in (0, $rpid) and h['models'][0]['restarts'] == 1" 10
post /v1/completions '{"model":"kjv-llama-16m","prompt":"In the beginning","temperature":0,"max_tokens":5}'
tap_check "after the restart a request works" body_is 'j["usage"]["completion_tokens"]' 5
curl -s -m 60 -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$A/api/generate" \
    -d '{"model":"kjv-llama-16m","prompt":"LONGTEXT","stream":false,"options":{"num_predict":2000}}' > "$tmp/code" &
cpid=$!
wait_health "$A" 'h["models"][0]["busy"] == 1' 10
kill -9 "$(health_field "$A" 'h["models"][0]["pid"]')"
wait_exit $cpid 20
tap_check "runner killed during a non-streamed request: 500 with why" \
    sh -c "[ \"\$(cat '$tmp/code')\" = 500 ] && grep -q 'crashed\\|killed' '$tmp/body'"

# ---- agent B: one slot of 512 tokens, a queue of one
start_agent b --model "$demo" --slots 1 --queue 1 --ctx 512
B=$PORT; BPID=$PID; pids="$pids $BPID"
# Context overflow: the prompt is longer than the 512-token context.
words=$(python3 -c 'print("In the beginning God created the heaven and the earth. " * 60)')
post /v1/completions "{\"model\":\"kjv-llama-16m\",\"prompt\":\"$words\"}"
tap_check "context overflow: 400 context_length_exceeded" \
    sh -c "[ $code = 400 ] && [ \"\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"error\"][\"code\"])' '$tmp/body')\" = context_length_exceeded ]"
tap_check "context overflow: the message gives both sizes" sh -c "grep -q 'context holds 512' '$tmp/body'"
post /v1/chat/completions "{\"model\":\"kjv-llama-16m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"$words\"}]}"
tap_check "context overflow while streaming: still a 400 status" test "$code" = 400
post /api/chat "{\"model\":\"kjv-llama-16m\",\"messages\":[{\"role\":\"user\",\"content\":\"$words\"}]}"
tap_check "context overflow: 400 (Ollama)" sh -c "[ $code = 400 ] && grep -q 'context holds' '$tmp/body'"

for i in 1 2; do
    curl -s -m 60 -o /dev/null "http://127.0.0.1:$B/v1/completions" \
        -d '{"model":"kjv-llama-16m","prompt":"LONGTEXT","max_tokens":400}' &
done
PORT=$B
tap_check "queue: one running, one waiting" \
    wait_health "$B" 'h["models"][0]["busy"] == 1 and h["models"][0]["queued"] == 1' 20
post /v1/completions '{"model":"kjv-llama-16m","prompt":"x","max_tokens":1}'
tap_check "queue full: 503 (OpenAI)" test "$code" = 503
tap_check "queue full: a Retry-After header" grep -qi '^Retry-After: [1-9]' "$tmp/hdr"
tap_check "queue full: the message says so" body_has "queue holds 1"
post /api/generate '{"model":"kjv-llama-16m","prompt":"x"}'
tap_check "queue full: 503 with Retry-After (Ollama)" \
    sh -c "[ $code = 503 ] && grep -qi '^Retry-After:' '$tmp/hdr'"
br=$(health_field "$B" 'h["models"][0]["pid"]')
kill -TERM $BPID
wait_exit $BPID 15; st=$EXIT_STATUS
tap_check "agent with busy runners stops on SIGTERM" test "$st" = 0
tap_check "its runner is gone too" sh -c "! kill -0 $br 2>/dev/null"

# ---- agent C: API key and CORS, and a model found in a Hugging Face cache
hub=$tmp/hub/models--Bible-Org--KJV-Tiny
make_tools_model "$hub/snapshots/0123abcd"
mkdir -p "$hub/refs"
printf '0123abcd' > "$hub/refs/main"
SHOAL_API_KEY=envkey start_agent c --models "$tmp/hub" --cors https://app.example
C=$PORT; CPID=$PID; pids="$pids $CPID"
curl -s -H 'Authorization: Bearer envkey' "http://127.0.0.1:$C/v1/models" > "$tmp/body"
tap_check "--models on a Hugging Face cache: the id is the repo id" \
    body_is '[m["id"] for m in j["data"]]' "['Bible-Org/KJV-Tiny']"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Authorization: Bearer envkey' \
    "http://127.0.0.1:$C/api/chat" -d '{"model":"kjv-tiny:latest","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":2}}')
tap_check "the repo's name alone (any case, :latest) finds it" \
    sh -c "[ $code = 200 ] && grep -q '\"eval_count\":2' '$tmp/body'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$C/v1/models")
tap_check "API key from the environment: 401 without it" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "http://127.0.0.1:$C/api/tags")
tap_check "API key: 401 with a wrong one (Ollama route too)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer envkey' "http://127.0.0.1:$C/v1/models")
tap_check "API key: 200 with Bearer KEY" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$C/health")
tap_check "API key: /health needs none" test "$code" = 200
curl -s -D "$tmp/hdr" -o /dev/null -X OPTIONS -H 'Origin: https://app.example' \
    -H 'Access-Control-Request-Method: POST' "http://127.0.0.1:$C/v1/chat/completions"
tap_check "CORS: a preflight from the allowed origin is answered" \
    grep -qi '^Access-Control-Allow-Origin: https://app.example' "$tmp/hdr"
curl -s -D "$tmp/hdr" -o /dev/null -H 'Origin: https://app.example' "http://127.0.0.1:$A/v1/models"
tap_check "CORS off by default: no Allow-Origin header" sh -c "! grep -qi '^Access-Control-Allow-Origin' '$tmp/hdr'"

# ---- no runner outlives its agent
cr=$(health_field "$C" 'h["models"][0]["pid"]')
kill -9 "$CPID"
wait_exit "$CPID" 10
tap_check "agent killed -9: its runner dies with it (PR_SET_PDEATHSIG)" \
    sh -c "for i in \$(seq 50); do kill -0 $cr 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
ar=$(runner_count "$APID")
tap_check "agent A has exactly its one live runner" test "$ar" = 1
kill -TERM "$APID"
wait_exit "$APID" 15; st=$EXIT_STATUS
tap_check "agent A: SIGTERM exits 0" test "$st" = 0
tap_check "agent A: its runners exited, the log says so" grep -q "runner (pid [0-9]*) exited with status 0" "$tmp/a.log"
tap_done
