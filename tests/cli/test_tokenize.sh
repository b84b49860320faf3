#!/bin/sh
# tests/cli/test_tokenize.sh: `shoal tokenize` / `shoal detokenize` on the
# demo model against cases of tests/fixtures/tokenizer/demo.json (made with
# Hugging Face tokenizers), --special on Llama 3.1's tokenizer, and the
# errors a user can make.
. "$SHOAL_SOURCE_ROOT/tests/lib/tap.sh"
FX="$SHOAL_SOURCE_ROOT/tests/fixtures/tokenizer"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# field CASE_FILE INDEX KEY: a case's string, or its ids as a JSON array
# without spaces (what tokenize prints), with no trailing newline added.
field() {
    python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])][sys.argv[3]]
sys.stdout.write(json.dumps(c, separators=(",", ":")) if isinstance(c, list) else c)' "$@"
}

# Cases without a trailing newline (the shell would strip it): plain prose,
# accents, CJK, a special token inside text, the last (KJV) line.
for i in 1 5 35 42 70 88; do
    text=$(field "$FX/demo.json" $i string)
    want=$(field "$FX/demo.json" $i ids)
    got=$("$SHOAL_BIN" tokenize --text "$text"); rc=$?
    tap_check "tokenize demo case $i" test $rc -eq 0 -a "$got" = "$want"
    dec=$(field "$FX/demo.json" $i decoded)
    got=$("$SHOAL_BIN" detokenize --ids "$want"); rc=$?
    tap_check "detokenize demo case $i" test $rc -eq 0 -a "$got" = "$dec"
    dec=$(field "$FX/demo.json" $i decoded_skip_special)
    got=$("$SHOAL_BIN" detokenize --skip-special --ids "$want"); rc=$?
    tap_check "detokenize --skip-special demo case $i" test $rc -eq 0 -a "$got" = "$dec"
done

# detokenize writes the text exactly: a trailing newline is the text's own.
"$SHOAL_BIN" detokenize --ids "$(field "$FX/demo.json" 14 ids)" > "$tmp/nl"
tap_check "detokenize adds nothing" test "$(od -An -c "$tmp/nl" | tr -d ' ')" = '\n'

# --model DIR, and --special adding Llama 3.1's <|begin_of_text|>.
mkdir "$tmp/llama"
gzip -dc "$SHOAL_SOURCE_ROOT/tests/fixtures/tokenizers/llama3_1/tokenizer.json.gz" \
    > "$tmp/llama/tokenizer.json"
text=$(field "$FX/llama3_1.json" 1 string)
got=$("$SHOAL_BIN" tokenize --model "$tmp/llama" --text "$text")
tap_check "tokenize --model (llama 3.1)" test "$got" = "$(field "$FX/llama3_1.json" 1 ids)"
got=$("$SHOAL_BIN" tokenize --model "$tmp/llama" --special --text "$text")
tap_check "tokenize --special adds BOS" \
    test "$got" = "$(field "$FX/llama3_1.json" 1 ids_with_special)"
got=$(SHOAL_MODEL="$tmp/llama" "$SHOAL_BIN" tokenize --text "$text")
tap_check "SHOAL_MODEL picks the model" test "$got" = "$(field "$FX/llama3_1.json" 1 ids)"

# Errors: usage (2) or failure (1), each with a message.
expect_rc() {
    want=$1; shift
    "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?
    test $rc -eq "$want" -a -s "$tmp/err"
}
tap_check "tokenize without --text: 2" expect_rc 2 "$SHOAL_BIN" tokenize
tap_check "tokenize stray argument: 2" expect_rc 2 "$SHOAL_BIN" tokenize --text a b
tap_check "tokenize unknown option: 2" expect_rc 2 "$SHOAL_BIN" tokenize --txt a
tap_check "tokenize invalid UTF-8: 1" expect_rc 1 "$SHOAL_BIN" tokenize --text "$(printf 'a\377')"
tap_check "tokenize missing model: 1" expect_rc 1 "$SHOAL_BIN" tokenize --model "$tmp/none" --text a
grep -q "$tmp/none/tokenizer.json" "$tmp/err"
tap_check "missing model names the file" test $? -eq 0
echo '{"model": {"type": "Unigram"}}' > "$tmp/tokenizer.json"
tap_check "tokenize unsupported model: 1" expect_rc 1 "$SHOAL_BIN" tokenize --model "$tmp" --text a
grep -q 'Unigram' "$tmp/err"
tap_check "unsupported model is named" test $? -eq 0
tap_check "detokenize without --ids: 2" expect_rc 2 "$SHOAL_BIN" detokenize
tap_check "detokenize bad id: 2" expect_rc 2 "$SHOAL_BIN" detokenize --ids 1,x
tap_check "detokenize negative id: 2" expect_rc 2 "$SHOAL_BIN" detokenize --ids -1
tap_check "detokenize trailing comma: 2" expect_rc 2 "$SHOAL_BIN" detokenize --ids 1,
tap_check "detokenize id past vocab: 1" expect_rc 1 "$SHOAL_BIN" detokenize --ids 8192
tap_done
