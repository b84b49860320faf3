// tests/node/openai.test.mjs: shoal through the official `openai` npm client
// (the version in package-lock.json): chat and completions, streamed and
// not, models, exact usage, stop strings, seeds, logprobs, a tool call round
// trip, reasoning, JSON mode, aborting a stream (and the server noticing),
// and errors arriving as the SDK's own error classes.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import OpenAI from 'openai';

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
  load,
  makeToolsModel,
  promptTokens,
  startAgent,
  waitCancelled,
  waitFor,
} from './lib.mjs';

const toolsDir = makeToolsModel();
const env = { SHOAL_TEST_FORCE_RULES: JSON.stringify(RULES) };
const agent = await startAgent('openai', ['--model', DEMO_DIR, '--model', toolsDir], env);
// One slot and a queue of one, behind an API key: for 401 and 503.
const small = await startAgent(
  'openai-small',
  ['--model', DEMO_DIR, '--slots', '1', '--queue', '1', '--api-key', 'sekrit'],
  env,
);
after(async () => {
  assert.equal(await agent.stop(), 0);
  assert.equal(await small.stop(), 0);
  cleanup();
});

// The SDK's own choice of HTTP client on Node is node-fetch 2.7 with a
// keep-alive agent, which fails every chunked (streamed) response with
// "Premature close" on Node 18.20 (Debian 12's nodejs), whatever the server:
// checked against a plain Node http server. Node's built-in fetch is the
// workaround the SDK's maintainers give (openai-node#202); Node 20 passes
// either way.
const fetch = globalThis.fetch;
const client = new OpenAI({ baseURL: `${agent.url}/v1`, apiKey: 'unused', maxRetries: 0, fetch });
const ask = [{ role: 'user', content: 'Recite John 3:16' }];

test('models: list and retrieve', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), [DEMO, TOOLS].sort());
  const m = await client.models.retrieve(DEMO);
  assert.equal(m.id, DEMO);
  assert.equal(m.object, 'model');
});

test('chat, not streamed: the greedy answer and exact usage', async () => {
  const r = await client.chat.completions.create({
    model: DEMO,
    messages: ask,
    temperature: 0,
    logprobs: true,
  });
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(c.message.content, JOHN_3_16);
  assert.equal(c.finish_reason, 'stop');
  // Exact counts: the rendered prompt as `shoal tokenize` counts it; every
  // generated token has a logprob entry except the end-of-turn token.
  assert.equal(r.usage.prompt_tokens, promptTokens(DEMO_DIR, ask));
  assert.equal(r.usage.completion_tokens, c.logprobs.content.length + 1);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(c.logprobs.content.map((t) => t.token).join(''), JOHN_3_16);
});

test('chat, streamed: the same text in deltas, then usage', async () => {
  const stream = await client.chat.completions.create({
    model: DEMO,
    messages: ask,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.delta.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(text, JOHN_3_16);
  assert.equal(finish, 'stop');
  assert.ok(chunks > 10, 'streamed token by token');
  assert.equal(usage.prompt_tokens, promptTokens(DEMO_DIR, ask));
  assert.ok(usage.completion_tokens > 20);
});

test('completions: not streamed and streamed agree', async () => {
  const req = { model: DEMO, prompt: 'In the beginning God', temperature: 0, max_tokens: 12 };
  const r = await client.completions.create(req);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.ok(r.choices[0].text.length > 0);
  let text = '';
  for await (const chunk of await client.completions.create({ ...req, stream: true }))
    text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('stop strings end the answer before them', async () => {
  const r = await client.chat.completions.create({
    model: DEMO,
    messages: ask,
    temperature: 0,
    stop: ['begotten', 'xyz'],
  });
  const c = r.choices[0];
  assert.equal(c.message.content, 'For God so loved the world, that he gave his only ');
  assert.equal(c.finish_reason, 'stop');
});

test('seeds: the same seed gives the same answer, others differ', async () => {
  const run = async (seed) =>
    (
      await client.completions.create({
        model: DEMO,
        prompt: 'And the LORD said',
        temperature: 1,
        max_tokens: 24,
        seed,
      })
    ).choices[0].text;
  const a = await run(42);
  assert.equal(await run(42), a);
  const others = await Promise.all([run(1), run(2), run(3)]);
  assert.ok(others.some((t) => t !== a), 'other seeds sample other text');
});

test('logprobs with top alternatives', async () => {
  const r = await client.chat.completions.create({
    model: DEMO,
    messages: ask,
    temperature: 0,
    max_tokens: 5,
    logprobs: true,
    top_logprobs: 3,
  });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 5);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // greedy: the chosen token is the most likely one
    assert.equal(t.top_logprobs[0].token, t.token);
  }
});

test('tool call round trip: the model calls, the client answers, the model replies', async () => {
  const messages = [{ role: 'user', content: 'TOOLTEST: what is the weather in Paris?' }];
  const r1 = await client.chat.completions.create({
    model: TOOLS,
    messages,
    tools: [WEATHER_TOOL],
  });
  const c1 = r1.choices[0];
  assert.equal(c1.finish_reason, 'tool_calls');
  assert.equal(c1.message.content, null);
  assert.equal(c1.message.tool_calls.length, 1);
  const call = c1.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', unit: 'celsius' });
  assert.match(call.id, /^call_/);
  assert.equal(
    r1.usage.prompt_tokens,
    promptTokens(toolsDir, messages, [WEATHER_TOOL]),
    'tools are rendered into the prompt',
  );

  messages.push(c1.message, { role: 'tool', tool_call_id: call.id, content: '22 C, sunny' });
  const r2 = await client.chat.completions.create({
    model: TOOLS,
    messages,
    tools: [WEATHER_TOOL],
  });
  assert.equal(r2.choices[0].message.content, TOOL_ANSWER);
  assert.equal(r2.choices[0].finish_reason, 'stop');
});

test('tool call, streamed: one call in deltas, finish tool_calls', async () => {
  const stream = await client.chat.completions.create({
    model: TOOLS,
    messages: [{ role: 'user', content: 'TOOLTEST' }],
    tools: [WEATHER_TOOL],
    stream: true,
  });
  let name = '';
  let args = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const tc of ch.delta.tool_calls ?? []) {
        assert.equal(tc.index, 0);
        name += tc.function?.name ?? '';
        args += tc.function?.arguments ?? '';
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { city: 'Paris', unit: 'celsius' });
  assert.equal(finish, 'tool_calls');
});

test('tool_choice: none hides the tools, required fails honestly when no call comes', async () => {
  const messages = [{ role: 'user', content: 'Recite John 3:16' }];
  const r = await client.chat.completions.create({
    model: TOOLS,
    messages,
    tools: [WEATHER_TOOL],
    tool_choice: 'none',
    max_tokens: 3,
  });
  assert.equal(r.usage.prompt_tokens, promptTokens(toolsDir, messages));
  // The demo weights cannot write a call: the forced opening "<tool_call>"
  // is followed by its own text, which is no valid call.
  await assert.rejects(
    client.chat.completions.create({
      model: TOOLS,
      messages,
      tools: [WEATHER_TOOL],
      tool_choice: 'required',
      temperature: 0,
      max_tokens: 20,
    }),
    (e) => e instanceof OpenAI.InternalServerError && /tool_choice required/.test(e.message),
  );
});

test('reasoning: <think> becomes reasoning_content', async () => {
  const r = await client.chat.completions.create({
    model: TOOLS,
    messages: [{ role: 'user', content: 'THINKTEST' }],
  });
  const m = r.choices[0].message;
  assert.equal(m.reasoning_content, THINKING);
  assert.equal(m.content, 'For God so loved the world.');
});

test('response_format json_object: JSON passes, anything else is an error', async () => {
  const r = await client.chat.completions.create({
    model: DEMO,
    messages: [{ role: 'user', content: 'JSONTEST as JSON' }],
    response_format: { type: 'json_object' },
  });
  assert.deepEqual(JSON.parse(r.choices[0].message.content), {
    book: 'John',
    chapter: 3,
    verse: 16,
  });
  await assert.rejects(
    client.chat.completions.create({
      model: DEMO,
      messages: ask,
      temperature: 0,
      response_format: { type: 'json_object' },
    }),
    (e) => e instanceof OpenAI.InternalServerError && /not valid JSON/.test(e.message),
  );
});

test('abort mid-stream: the server cancels the generation', async () => {
  const before = cancelCount(agent);
  const stream = await client.chat.completions.create({
    model: DEMO,
    messages: [{ role: 'user', content: 'LONGTEXT' }],
    max_tokens: 300,
    stream: true,
  });
  let n = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content && ++n === 3) break; // break aborts the request
  }
  assert.equal(n, 3);
  assert.equal(stream.controller.signal.aborted, true);
  await waitCancelled(agent, DEMO, before);
});

test('errors arrive as the SDK error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: ask }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model: DEMO, messages: ask, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
  await assert.rejects(
    client.completions.create({
      model: DEMO,
      prompt: 'In the beginning God created the heaven and the earth. '.repeat(200),
    }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
  );
  const wrongKey = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'wrong', maxRetries: 0, fetch });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError);

  // A full queue: 503 with Retry-After, an InternalServerError for this SDK.
  const ok = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'sekrit', maxRetries: 0, fetch });
  const long = { model: DEMO, prompt: 'LONGTEXT', max_tokens: 1000 };
  const running = [ok.completions.create(long), ok.completions.create(long)];
  await waitFor(
    async () => {
      const l = await load(small, DEMO);
      return l.busy === 1 && l.queued === 1;
    },
    10000,
    'one running and one queued',
  );
  await assert.rejects(
    ok.completions.create({ model: DEMO, prompt: 'x', max_tokens: 1 }),
    (e) =>
      e instanceof OpenAI.InternalServerError &&
      e.status === 503 &&
      Number(e.headers['retry-after']) >= 1,
  );
  for (const r of await Promise.all(running)) assert.equal(r.choices[0].finish_reason, 'length');
});
