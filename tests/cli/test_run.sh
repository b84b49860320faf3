#!/bin/sh
# tests/cli/test_run.sh: `shoal run` on the demo model as a user runs it:
# the greedy chat answer (the model README's sample 3, checked against
# transformers in tests/engine/test_generate.c), plain continuation, stop
# strings, limits, seeds, the summary line on stderr, and the errors a user
# can make (usage: 2, a model that cannot be used: 1).
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

answer="For God so loved the world, that he gave his only begotten Son, that whosoever believeth in him should not perish, but have everlasting life."

# run ARGS...: shoal run with stdout in $tmp/out, stderr in $tmp/err, $rc set.
run() {
    "$SHOAL_BIN" run "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
}
# out_is TEXT: stdout is exactly TEXT (no newline added when not a terminal).
out_is() {
    printf '%s' "$1" > "$tmp/want"
    cmp -s "$tmp/out" "$tmp/want"
}
err_has() {
    grep -Eq "$1" "$tmp/err"
}

run --chat --prompt "Recite John 3:16" --temp 0
tap_check "chat greedy: exit 0" test $rc -eq 0
tap_check "chat greedy: the verse, exactly" out_is "$answer"
tap_check "chat greedy: speed line" \
    err_has '^prompt: 26 tokens, [0-9]+\.[0-9] tok/s \| generation: 30 tokens, [0-9]+\.[0-9] tok/s \| stop: eos$'

run --prompt "In the beginning God created" --temp 0
tap_check "plain greedy continuation" test $rc -eq 0
tap_check "plain greedy text" out_is " the heaven and the earth."

# "ved the wo" starts inside " loved" and ends inside " world".
run --chat --prompt "Recite John 3:16" --temp 0 --stop "not here" --stop "ved the wo"
tap_check "stop string across tokens: text ends before it" out_is "For God so lo"
tap_check "stop string: reason" err_has 'stop: stop string$'

run --chat --prompt "Recite John 3:16" --temp 0 -n 3
tap_check "-n 3: three tokens" out_is "For God so"
tap_check "-n 3: reason" err_has 'generation: 3 tokens.*stop: max tokens$'

run --chat --prompt "Recite John 3:16" --temp 0 --ctx 28
tap_check "--ctx: stops when full" out_is "For God so"
tap_check "--ctx: reason" err_has 'stop: context full$'

run --chat --prompt "Recite John 3:16" --temp 0 --ctx 26
tap_check "--ctx smaller than the prompt: 1" test $rc -eq 1
tap_check "--ctx too small: says so" err_has 'prompt is 26 tokens and the context holds 26'

# --no-eos runs past <|im_end|> (special tokens' text stays hidden).
run --chat --prompt "Recite John 3:16" --temp 0 --no-eos -n 33
tap_check "--no-eos: runs to -n" err_has 'generation: 33 tokens.*stop: max tokens$'
tap_check "--no-eos: no special token text" sh -c "! grep -q '<|' '$tmp/out'"

run --prompt "And it came to pass, when" --seed 7 -n 24 --temp 1.0 --no-eos
cp "$tmp/out" "$tmp/seed7"
run --prompt "And it came to pass, when" --seed 7 -n 24 --temp 1.0 --no-eos
tap_check "same seed, same text" cmp -s "$tmp/out" "$tmp/seed7"
run --prompt "And it came to pass, when" --seed 8 -n 24 --temp 1.0 --no-eos
tap_check "another seed, another text" sh -c "! cmp -s '$tmp/out' '$tmp/seed7'"
run --prompt "And it came to pass, when" -n 4 --threads 1 --top-k 5 --top-p 0.9 --min-p 0.05 \
    --repeat-penalty 1.1
tap_check "every sampling flag accepted" test $rc -eq 0

tap_check "--help" sh -c "'$SHOAL_BIN' run --help | head -1 | grep -q '^usage: shoal run'"
tap_check "listed by help" sh -c "'$SHOAL_BIN' help | grep -q '^  run '"

# Usage errors: exit 2 with a message.
expect_usage() {
    run "$@"
    test $rc -eq 2 -a -s "$tmp/err"
}
tap_check "no --prompt: 2" expect_usage --temp 0
tap_check "unknown option: 2" expect_usage --prompt a --tmp 0
tap_check "stray argument: 2" expect_usage --prompt a b
tap_check "missing value: 2" expect_usage --prompt
tap_check "--temp -1: 2" expect_usage --prompt a --temp -1
tap_check "--temp abc: 2" expect_usage --prompt a --temp abc
tap_check "--top-p 0: 2" expect_usage --prompt a --top-p 0
tap_check "--top-p 1.5: 2" expect_usage --prompt a --top-p 1.5
tap_check "--top-k -1: 2" expect_usage --prompt a --top-k -1
tap_check "--min-p 2: 2" expect_usage --prompt a --min-p 2
tap_check "--repeat-penalty 0: 2" expect_usage --prompt a --repeat-penalty 0
tap_check "-n 0: 2" expect_usage --prompt a -n 0
tap_check "-n x: 2" expect_usage --prompt a -n x
tap_check "--threads 0: 2" expect_usage --prompt a --threads 0
tap_check "--seed -1: 2" expect_usage --prompt a --seed -1
tap_check "--stop empty: 2" expect_usage --prompt a --stop ""
tap_check "--ctx 1: 2" expect_usage --prompt a --ctx 1
tap_check "--ctx past the model: 2" expect_usage --prompt a --ctx 4096

# A model that cannot be used: exit 1, the reason named.
run --model "$tmp/none" --prompt a
tap_check "missing model: 1" test $rc -eq 1
tap_check "missing model: names the file" err_has "$tmp/none/tokenizer.json"
mkdir "$tmp/notok"
cp "$SHOAL_SOURCE_ROOT/models/kjv-llama-16m/tokenizer.json" "$tmp/notok/"
run --model "$tmp/notok" --prompt a
tap_check "no config.json: 1" test $rc -eq 1
tap_check "no config.json: named" err_has 'config.json'
run --prompt "$(printf 'a\377')"
tap_check "invalid UTF-8 prompt: 1" test $rc -eq 1
run --prompt ""
tap_check "empty prompt: 1" test $rc -eq 1

# --chat renders the model's own template: a folder whose chat_template.jinja
# is just the user's text makes a prompt of exactly that text's tokens.
mkdir "$tmp/plain"
for f in "$SHOAL_SOURCE_ROOT"/models/kjv-llama-16m/*; do
    ln -s "$f" "$tmp/plain/"
done
printf '%s' "{{ messages[0]['content'] }} said" > "$tmp/plain/chat_template.jinja"
want=$("$SHOAL_BIN" tokenize --model "$tmp/plain" --text "Thou shalt not said" | tr -cd ',' | wc -c)
want=$((want + 1))
run --model "$tmp/plain" --chat --prompt "Thou shalt not" -n 3 --temp 0
tap_check "--chat uses chat_template.jinja: exit 0" test $rc -eq 0
tap_check "--chat uses chat_template.jinja: prompt is the rendered text" err_has "prompt: $want tokens"

# --chat with a model folder that has no chat template at all.
mkdir "$tmp/notmpl"
for f in "$SHOAL_SOURCE_ROOT"/models/kjv-llama-16m/*; do
    ln -s "$f" "$tmp/notmpl/"
done
rm "$tmp/notmpl/tokenizer_config.json"
run --model "$tmp/notmpl" --chat --prompt hi
tap_check "--chat without a template: 1" test $rc -eq 1
tap_check "--chat without a template: says so" err_has 'tokenizer_config.json'
tap_done
