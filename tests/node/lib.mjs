// tests/node/lib.mjs: what the client tests share: real agents started on
// free ports, the tools model (the demo's weights under Qwen3's chat
// template), the forced outputs of the runner's test aid, and `shoal
// tokenize` / `shoal template` to check token counts exactly.
//
// Forced outputs (SHOAL_TEST_FORCE_RULES, documented in README "API"): a
// prompt containing the match string is answered with exactly these tokens
// instead of sampled ones; the text then goes through the real path
// (detokenizer, stop strings, chat output parser, API formatting, the
// client). The demo model cannot follow instructions, so this is how a tool
// call, reasoning or valid JSON is produced deterministically: a broken
// parser or formatter still fails the tests.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = process.env.SHOAL_SOURCE_ROOT;
export const BIN = process.env.SHOAL_BIN;
export const DEMO_DIR = path.join(ROOT, 'models', 'kjv-llama-16m');
export const DEMO = 'kjv-llama-16m';
export const TOOLS = 'kjv-qwen3-tools';
export const JOHN_3_16 =
  'For God so loved the world, that he gave his only begotten Son, that whosoever ' +
  'believeth in him should not perish, but have everlasting life.';

export const TOOL_ANSWER = 'It is 22 degrees and sunny in Paris.';
export const THINKING = 'The user asks for a verse; John 3:16 fits.';
export const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string' } },
      required: ['city'],
    },
  },
};
// The first rule whose match occurs in the rendered prompt wins, so the
// tool result's rule comes before the call's (both occur in the second turn).
export const RULES = [
  { match: '</tool_response>', output: `${TOOL_ANSWER}<|im_end|>` },
  {
    match: 'TOOLTEST',
    output:
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n' +
      '</tool_call><|im_end|>',
  },
  {
    match: 'THINKTEST',
    output: `<think>\n${THINKING}\n</think>\n\nFor God so loved the world.<|im_end|>`,
  },
  { match: 'JSONTEST', output: '{"book": "John", "chapter": 3, "verse": 16}<|im_end|>' },
  // 1,201 tokens: every LONGTEXT request (max_tokens <= 1000) ends inside
  // the forced text, so it ends by length, never by a sampled end of turn.
  { match: 'LONGTEXT', output: 'amen '.repeat(600) },
];

export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-clients-'));

/** Removes tmp (agent logs, data dirs, the tools model), unless
 * SHOAL_KEEP_TMP is set; call once the agents have stopped. */
export function cleanup() {
  if (!process.env.SHOAL_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
}

/** The demo model with Qwen3's chat template: a folder of symlinks. */
export function makeToolsModel() {
  const dir = path.join(tmp, TOOLS);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(DEMO_DIR)) {
    if (!f.endsWith('.md')) fs.symlinkSync(path.join(DEMO_DIR, f), path.join(dir, f));
  }
  const cfg = JSON.parse(
    fs.readFileSync(path.join(ROOT, 'tests/fixtures/tokenizers/qwen3/tokenizer_config.json')),
  );
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), cfg.chat_template);
  return dir;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value or ms pass; returns the value. */
export async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Starts `shoal agent` with args on a free port, waits until its models
 * are ready. Returns {port, url, log(), health(), stop()}. */
export async function startAgent(name, args, env = {}) {
  const port = await freePort();
  const logPath = path.join(tmp, `${name}.log`);
  const out = fs.openSync(logPath, 'w');
  const proc = spawn(
    BIN,
    ['agent', '--data-dir', path.join(tmp, `${name}.data`), '--api-port', String(port), '--peer-port', '0', '--no-mdns', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  const agent = {
    port,
    url,
    proc,
    log: () => fs.readFileSync(logPath, 'utf8'),
    health: async () => (await fetch(`${url}/health`)).json(),
    stop: async () => {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      return done;
    },
  };
  await waitFor(
    async () => {
      const h = await agent.health();
      return h.models.every((m) => m.state === 'ready' || m.state === 'failed');
    },
    30000,
    `agent ${name}`,
  );
  return agent;
}

/** The prompt the server renders for messages (and tools), via `shoal
 * template`, tokenized by `shoal tokenize`: its exact token count. */
export function promptTokens(modelDir, messages, tools) {
  const f = path.join(tmp, `msgs-${process.hrtime.bigint()}.json`);
  fs.writeFileSync(f, JSON.stringify(tools ? { messages, tools } : messages));
  const text = execFileSync(BIN, [
    'template',
    '--model',
    modelDir,
    '--messages',
    f,
    '--add-generation-prompt',
  ]).toString();
  return tokenCount(modelDir, text);
}

export function tokenCount(modelDir, text, special = false) {
  const args = ['tokenize', '--model', modelDir, '--text', text];
  if (special) args.push('--special');
  return JSON.parse(execFileSync(BIN, args).toString()).length;
}

/** Busy and queued request counts of a model, from /health. */
export async function load(agent, id) {
  const h = await agent.health();
  const m = h.models.find((x) => x.id === id);
  return { busy: m.busy, queued: m.queued, pid: m.pid };
}

/** How many generations the agent has logged as cancelled because their
 * client went away. */
export function cancelCount(agent) {
  return (agent.log().match(/cancelled \(client gone\)/g) || []).length;
}

/** After a client aborted a stream of model: waits (5 s each) until the
 * agent has logged more cancels than before (a cancelCount taken before the
 * request) and the model's slot is free again. */
export async function waitCancelled(agent, model, before) {
  await waitFor(async () => cancelCount(agent) > before, 5000, 'the agent to log the cancel');
  await waitFor(async () => (await load(agent, model)).busy === 0, 5000, 'the slot to be free');
}
