# tests/lib/serve.sh: agents that serve models, for shell tests (sourced
# after tap.sh and agent.sh). Every wait is bounded.

# make_tools_model DIR: a copy of the demo model (symlinks to its weights and
# tokenizer) whose chat template is Qwen3's (from the repository's fixture
# tokenizer_config.json), so tools and thinking render and the output parser
# runs in Hermes format. The folder name is the model id.
make_tools_model() {
    mkdir -p "$1"
    for f in "$SHOAL_SOURCE_ROOT"/models/kjv-llama-16m/*; do
        case $f in *.md) ;; *) ln -sf "$f" "$1/" ;; esac
    done
    python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["chat_template"])' \
        "$SHOAL_SOURCE_ROOT/tests/fixtures/tokenizers/qwen3/tokenizer_config.json" \
        > "$1/chat_template.jinja"
}

# health_field PORT EXPR: a value from /health, EXPR a Python expression on h
# (the parsed body), e.g. 'h["models"][0]["pid"]'. Prints nothing on error.
health_field() {
    curl -s -m 5 "http://127.0.0.1:$1/health" |
        python3 -c 'import json,sys
try:
    h = json.load(sys.stdin); print(eval(sys.argv[1]))
except Exception:
    pass' "$2" 2>/dev/null
}

# wait_models PORT SECONDS: waits until no model of the agent is loading or
# restarting.
wait_models() {
    _end=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -le "$_end" ]; do
        v=$(health_field "$1" 'all(m["state"] in ("ready", "failed") for m in h["models"])')
        [ "$v" = True ] && return 0
        sleep 0.1
    done
    return 1
}

# wait_health PORT EXPR SECONDS: waits until EXPR (as for health_field) is True.
wait_health() {
    _end=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -le "$_end" ]; do
        [ "$(health_field "$1" "$2")" = True ] && return 0
        sleep 0.1
    done
    return 1
}

# start_agent NAME ARGS...: starts `shoal agent` on a free port with its log
# in $tmp/NAME.log; sets PORT and PID. Waits for /health and the models.
start_agent() {
    _name=$1; shift
    PORT=$(free_port)
    "$SHOAL_BIN" agent --data-dir "$tmp/$_name.data" --api-port "$PORT" --peer-port 0 --no-mdns "$@" \
        2> "$tmp/$_name.log" &
    PID=$!
    wait_http "http://127.0.0.1:$PORT/health" 20 && wait_models "$PORT" 60
}

# runner_count PID: how many children the agent has (its runners).
runner_count() {
    pgrep -c -P "$1" 2>/dev/null || true
}

# json_get FILE EXPR: EXPR (Python, on j) of the JSON in FILE; empty on error.
json_get() {
    python3 -c 'import json,sys
try:
    j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))
except Exception:
    pass' "$1" "$2" 2>/dev/null
}
