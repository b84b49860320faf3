// tests/engine/data/gen_tok_edge.js: makes tok_edge.json, reference outputs
// of Hugging Face tokenizers for the tokenizer.json components that the four
// real tokenizers in tests/fixtures do not exercise (added-token lstrip/
// rstrip/single_word/normalized, every Split behaviour and invert, String
// patterns, GPT-2 ByteLevel with prefix space, TemplateProcessing with a
// suffix, ignore_merges, unk tokens, NFKC/NFD, Digits, legacy merges) and
// for decoding ids that split UTF-8 characters.
//
// Each variant is a small tokenizer built from the demo model's first merges,
// stored in the output (its vocab and merges once per distinct model under
// `shared`), so the test needs nothing else.
// Regenerate (needs Node.js and the tokenizers package, not a test
// dependency):
//   npm install tokenizers@0.23.2
//   node tests/engine/data/gen_tok_edge.js > tests/engine/data/tok_edge.json
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const root = path.join(__dirname, '..', '..', '..');
const demo = JSON.parse(fs.readFileSync(path.join(root, 'models/kjv-llama-16m/tokenizer.json')));

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  const m = new Array(256);
  bs.forEach((b, i) => { m[b] = String.fromCodePoint(cs[i]); });
  return m;
}
const B2U = bytesToUnicode();

// A small byte-level BPE: the 256 byte tokens, then the results of the demo
// model's first 600 merges (ids in order), minus the bytes in `drop`.
function baseModel(drop = []) {
  const vocab = {};
  let id = 0;
  const dropped = new Set(drop.map((b) => B2U[b]));
  for (let b = 0; b < 256; b++) if (!dropped.has(B2U[b])) vocab[B2U[b]] = id++;
  const merges = [];
  for (const m of demo.model.merges.slice(0, 600)) {
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    if (!(a in vocab) || !(b in vocab)) continue;
    merges.push([a, b]);
    if (!((a + b) in vocab)) vocab[a + b] = id++;
  }
  return { vocab, merges, next: id };
}

const QWEN_RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const BL = (prefix = false, re = false) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: false, use_regex: re });
const split = (pattern, behavior, invert = false) => ({ type: 'Split', pattern, behavior, invert });
const added = (id, content, o = {}) => Object.assign({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }, o);

function tokenizer(o = {}) {
  const m = baseModel(o.drop || []);
  const vocab = m.vocab;
  let next = m.next;
  for (const w of o.extraVocab || []) vocab[w] = next++;
  if (o.unk) vocab['<unk>'] = next++;
  const specials = [added(next, '<|endoftext|>'), added(next + 1, '<|im_start|>'), added(next + 2, '<|im_end|>')];
  next += 3;
  const extra = (o.added || []).map((a, i) => added(next + i, a.content, a));
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.concat(extra),
    normalizer: o.normalizer === undefined ? { type: 'NFC' } : o.normalizer,
    pre_tokenizer: o.pre || { type: 'Sequence', pretokenizers: [split({ Regex: QWEN_RE }, 'Isolated'), BL()] },
    post_processor: o.post || BL(),
    decoder: BL(),
    model: {
      type: 'BPE', dropout: null, unk_token: o.unk ? '<unk>' : null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: !!o.fuse_unk, byte_fallback: false, ignore_merges: !!o.ignore_merges,
      vocab, merges: o.legacy ? m.merges.map(([a, b]) => a + ' ' + b) : m.merges,
    },
  };
}

const COMMON = [
  '', 'Hello world', ' leading', 'trailing ', '  two  spaces  ', 'a\tb\nc\r\nd', 'In the beginning God created',
  "I'm sure they'll say it's fine", '1234567 and 3.14', 'café e\u0301 Å A\u030a ﬁ ½ ²', 'ｆｕｌｌ ｗｉｄｔｈ １２',
  '日本語 中文 한국어', '😀👍🏽', 'x<|endoftext|>y', '<|im_start|>user\nhi<|im_end|>', 'a, b. c,, d..', 'one-two_three',
  '\u00a0nbsp\u3000ideo', 'zzz zzzz', 'qqq', 'hello', ' hello', 'xq xqz xqzz axqz', 'word words sword word_ word.', 'thee three tree eee thatt tttea',
  'sep<sep> <sep>   <sep>end', '[X]   next [X]', 'ñu n\u0303u ñ n\u0303', 'tab\t<sep>\tx', '\ud7ff\ue000\u{10ffff}',
];

const variants = [
  { name: 'base', tok: tokenizer() },
  { name: 'legacy_merges', tok: tokenizer({ legacy: true }) },
  { name: 'added_flags', tok: tokenizer({ added: [
    { content: '<sep>', lstrip: true, rstrip: true },
    { content: '[X]', rstrip: true, special: false },
    { content: 'word', single_word: true, special: false, normalized: true },
    { content: 'ñu', special: false, normalized: true },
    { content: 'xq', special: false },
    { content: 'xqz', special: false },
  ] }) },
  { name: 'split_removed_string', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ String: ' ' }, 'Removed'), BL()] } }) },
  { name: 'split_merged_previous', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: '[,.]' }, 'MergedWithPrevious'), BL()] } }) },
  { name: 'split_merged_next', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: '\\s+' }, 'MergedWithNext'), BL()] } }) },
  { name: 'split_merged_previous_e', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ String: 'e' }, 'MergedWithPrevious'), BL()] } }) },
  { name: 'split_merged_next_t', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: 't' }, 'MergedWithNext'), BL()] } }) },
  { name: 'split_contiguous_e', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: 'e' }, 'Contiguous'), BL()] } }) },
  { name: 'split_contiguous', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: '[0-9]|\\.' }, 'Contiguous'), BL()] } }) },
  { name: 'split_invert_isolated', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: '\\p{L}+' }, 'Isolated', true), BL()] } }) },
  { name: 'split_invert_removed', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: '\\p{L}+' }, 'Removed', true), BL()] } }) },
  { name: 'split_empty_matches', tok: tokenizer({ pre: { type: 'Sequence', pretokenizers: [split({ Regex: 'x*' }, 'MergedWithPrevious'), BL()] } }) },
  { name: 'gpt2_prefix_template', tok: tokenizer({ normalizer: null, pre: BL(true, true), post: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|im_end|>', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: {},
  } }) },
  { name: 'ignore_merges', tok: tokenizer({ ignore_merges: true, extraVocab: ['zzz', 'Ġzzzz', 'hello'] }) },
  { name: 'no_ignore_merges', tok: tokenizer({ extraVocab: ['zzz', 'Ġzzzz', 'hello'] }) },
  { name: 'nfkc_digits', tok: tokenizer({ normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }] },
    pre: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'Sequence', pretokenizers: [split({ Regex: '\\s+' }, 'Isolated')] }, BL()] } }) },
  { name: 'nfd_digits_runs', tok: tokenizer({ normalizer: { type: 'NFD' }, pre: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: false }, BL(false, true)] } }) },
  { name: 'unk_fused', tok: tokenizer({ drop: [0x7a, 0x71], unk: true, fuse_unk: true }) },
  { name: 'unk_unfused', tok: tokenizer({ drop: [0x7a, 0x71], unk: true, fuse_unk: false }) },
  { name: 'no_unk_drops', tok: tokenizer({ drop: [0x7a, 0x71] }) },
];
// The template's ids are filled in once the special tokens' ids are known.
for (const v of variants) {
  const p = v.tok.post_processor;
  if (p.type === 'TemplateProcessing')
    for (const a of v.tok.added_tokens) if (a.content === '<|im_start|>' || a.content === '<|im_end|>')
      p.special_tokens[a.content] = { id: a.content, ids: [a.id], tokens: [a.content] };
}

const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
(async () => {
  const out = { generator: 'tests/engine/data/gen_tok_edge.js', tokenizers_version: '0.23.2', shared: [], variants: [] };
  const sharedKeys = [];
  for (const v of variants) {
    const t = Tokenizer.fromString(JSON.stringify(v.tok));
    const cases = [];
    for (const s of COMMON) {
      const e = await t.encode(s, null, { addSpecialTokens: false });
      const e2 = await t.encode(s, null, { addSpecialTokens: true });
      const ids = Array.from(e.getIds());
      cases.push({ hex: hex(s), ids, ids_with_special: Array.from(e2.getIds()),
        decoded_hex: hex(await t.decode(ids, false)), decoded_skip_special_hex: hex(await t.decode(ids, true)) });
    }
    // vocab and merges are stored once per distinct model (`shared`); the
    // test puts them back into model before loading.
    const key = JSON.stringify([v.tok.model.vocab, v.tok.model.merges]);
    let si = sharedKeys.indexOf(key);
    if (si < 0) {
      si = sharedKeys.push(key) - 1;
      out.shared.push({ vocab: v.tok.model.vocab, merges: v.tok.model.merges });
    }
    const stored = JSON.parse(JSON.stringify(v.tok));
    delete stored.model.vocab;
    delete stored.model.merges;
    out.variants.push({ name: v.name, shared: si, tokenizer: stored, cases });
  }
  // Decoding ids that split characters: tokenizers repairs with U+FFFD.
  const t = Tokenizer.fromString(JSON.stringify(variants[0].tok));
  const id = (b) => variants[0].tok.model.vocab[B2U[b]];
  const seqs = [[0xe4], [0xe4, 0xbd], [0xe4, 0xbd, 0xa0], [0x61, 0xe4, 0xbd, 0x62], [0xf0, 0x9f, 0x98], [0xf0, 0x9f, 0x98, 0x80],
    [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8], [0xff, 0xfe], [0x80, 0x80, 0x61], [0xe0, 0x80, 0x80],
    [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0x28], [0xf1, 0x80, 0x80]];
  out.decode_cases = [];
  for (const s of seqs) {
    const ids = s.map(id);
    out.decode_cases.push({ ids, decoded_hex: hex(await t.decode(ids, false)) });
  }
  process.stdout.write(JSON.stringify(out, null, 0) + '\n');
})();
