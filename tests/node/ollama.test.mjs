// tests/node/ollama.test.mjs: shoal through the official `ollama` npm client
// (the version in package-lock.json): chat and generate, streamed and not,
// tags, show, ps, options (seed, stop, num_predict), a tool call round trip,
// thinking, aborting a stream (and the server noticing), and errors as the
// client's ResponseError.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { Ollama } from 'ollama';

import {
  DEMO,
  DEMO_DIR,
  JOHN_3_16,
  RULES,
  THINKING,
  TOOLS,
  TOOL_ANSWER,
  WEATHER_TOOL,
  cancelCount,
  cleanup,
  makeToolsModel,
  promptTokens,
  startAgent,
  tokenCount,
  waitCancelled,
} from './lib.mjs';

const toolsDir = makeToolsModel();
const agent = await startAgent('ollama', ['--model', DEMO_DIR, '--model', toolsDir], {
  SHOAL_TEST_FORCE_RULES: JSON.stringify(RULES),
});
after(async () => {
  assert.equal(await agent.stop(), 0);
  cleanup();
});

const ollama = new Ollama({ host: agent.url });
const ask = [{ role: 'user', content: 'Recite John 3:16' }];

// The client's errors: class ResponseError, not exported by the package.
const responseError = (status, re) => (e) =>
  e.name === 'ResponseError' && e.status_code === status && (!re || re.test(e.error));

test('tags, show, ps', async () => {
  const tags = await ollama.list();
  const names = tags.models.map((m) => m.name).sort();
  assert.deepEqual(names, [`${DEMO}:latest`, `${TOOLS}:latest`].sort());
  const demo = tags.models.find((m) => m.name === `${DEMO}:latest`);
  assert.equal(demo.details.family, 'llama');
  assert.equal(demo.details.quantization_level, 'BF16');
  assert.equal(demo.details.format, 'safetensors');
  assert.match(demo.digest, /^[0-9a-f]{64}$/);
  assert.equal(demo.size, 31470336);

  const show = await ollama.show({ model: `${DEMO}:latest` });
  assert.match(show.template, /<\|im_start\|>/);
  assert.ok(show.capabilities.includes('completion'));
  assert.ok(!show.capabilities.includes('tools'));
  const tools = await ollama.show({ model: TOOLS });
  assert.ok(tools.capabilities.includes('tools'));
  assert.ok(tools.capabilities.includes('thinking'));
  assert.equal(show.model_info['llama.context_length'], 2048);

  const ps = await ollama.ps();
  assert.equal(ps.models.length, 2);
  assert.ok(ps.models.every((m) => m.size_vram === 0));
});

test('chat, not streamed: the greedy answer, counts and durations', async () => {
  const r = await ollama.chat({ model: DEMO, messages: ask, options: { temperature: 0 } });
  assert.equal(r.message.role, 'assistant');
  assert.equal(r.message.content, JOHN_3_16);
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'stop');
  assert.equal(r.prompt_eval_count, promptTokens(DEMO_DIR, ask));
  assert.ok(r.eval_count > 20);
  // durations are real nanoseconds
  assert.ok(r.eval_duration > 1e5 && r.eval_duration < 60e9);
  assert.ok(r.prompt_eval_duration > 0);
  assert.ok(r.total_duration >= r.eval_duration + r.prompt_eval_duration);
  assert.ok(r.load_duration >= 0);
});

test('chat, streamed: the same text line by line', async () => {
  let text = '';
  let last = null;
  let parts = 0;
  for await (const part of await ollama.chat({
    model: `${DEMO}:latest`,
    messages: ask,
    stream: true,
    options: { temperature: 0 },
  })) {
    text += part.message.content;
    parts++;
    last = part;
  }
  assert.equal(text, JOHN_3_16);
  assert.ok(parts > 10);
  assert.equal(last.done, true);
  assert.equal(last.done_reason, 'stop');
});

test('generate: with the template, raw, streamed', async () => {
  const r = await ollama.generate({ model: DEMO, prompt: 'Recite John 3:16', options: { temperature: 0 } });
  assert.equal(r.response, JOHN_3_16);
  const raw = await ollama.generate({
    model: DEMO,
    prompt: 'In the beginning God',
    raw: true,
    options: { temperature: 0, num_predict: 10 },
  });
  assert.equal(raw.done_reason, 'length');
  assert.equal(raw.eval_count, 10);
  assert.equal(raw.prompt_eval_count, tokenCount(DEMO_DIR, 'In the beginning God', true));
  let text = '';
  for await (const part of await ollama.generate({
    model: DEMO,
    prompt: 'In the beginning God',
    raw: true,
    stream: true,
    options: { temperature: 0, num_predict: 10 },
  }))
    text += part.response;
  assert.equal(text, raw.response);
});

test('options: seed, stop, num_predict', async () => {
  const run = (seed) =>
    ollama.generate({
      model: DEMO,
      prompt: 'And the LORD said',
      raw: true,
      options: { seed, temperature: 1, num_predict: 20 },
    });
  const a = await run(7);
  assert.equal((await run(7)).response, a.response);
  const r = await ollama.chat({
    model: DEMO,
    messages: ask,
    options: { temperature: 0, stop: ['world'] },
  });
  assert.equal(r.message.content, 'For God so loved the ');
  assert.equal(r.done_reason, 'stop');
});

test('tool call round trip', async () => {
  const messages = [{ role: 'user', content: 'TOOLTEST: weather in Paris?' }];
  const r1 = await ollama.chat({ model: TOOLS, messages, tools: [WEATHER_TOOL] });
  assert.equal(r1.message.tool_calls.length, 1);
  const fn = r1.message.tool_calls[0].function;
  assert.equal(fn.name, 'get_weather');
  assert.deepEqual(fn.arguments, { city: 'Paris', unit: 'celsius' });
  messages.push(r1.message, { role: 'tool', content: '22 C, sunny', tool_name: 'get_weather' });
  const r2 = await ollama.chat({ model: TOOLS, messages, tools: [WEATHER_TOOL] });
  assert.equal(r2.message.content, TOOL_ANSWER);
  assert.equal(r2.done_reason, 'stop');
});

test('thinking: think true gives message.thinking', async () => {
  const r = await ollama.chat({
    model: TOOLS,
    messages: [{ role: 'user', content: 'THINKTEST' }],
    think: true,
  });
  assert.equal(r.message.thinking, THINKING);
  assert.equal(r.message.content, 'For God so loved the world.');
  let thinking = '';
  for await (const part of await ollama.chat({
    model: TOOLS,
    messages: [{ role: 'user', content: 'THINKTEST' }],
    think: true,
    stream: true,
  }))
    thinking += part.message.thinking ?? '';
  assert.equal(thinking, THINKING);
});

test('abort mid-stream: the server cancels the generation', async () => {
  const before = cancelCount(agent);
  const stream = await ollama.generate({
    model: DEMO,
    prompt: 'LONGTEXT',
    stream: true,
    options: { num_predict: 300 },
  });
  let n = 0;
  await assert.rejects(async () => {
    for await (const part of stream) {
      if (part.response && ++n === 3) stream.abort();
    }
  }, (e) => e.name === 'AbortError');
  await waitCancelled(agent, DEMO, before);
});

test('errors arrive as ResponseError', async () => {
  await assert.rejects(
    ollama.chat({ model: 'no-such-model', messages: ask }),
    responseError(404, /not found/),
  );
  await assert.rejects(
    ollama.generate({
      model: DEMO,
      prompt: 'In the beginning God created the heaven and the earth. '.repeat(200),
    }),
    responseError(400, /context holds 2048/),
  );
  await assert.rejects(
    ollama.chat({ model: DEMO, messages: ask, think: true }),
    responseError(400, /does not support thinking/),
  );
  await assert.rejects(
    ollama.chat({ model: DEMO, messages: ask, tools: [WEATHER_TOOL] }),
    responseError(400, /does not support tools/),
  );
});
