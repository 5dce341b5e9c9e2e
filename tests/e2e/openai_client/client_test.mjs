// The official OpenAI Node client (openai@6, pinned in package.json) against a running
// `tern serve`: models, chat (whole and streamed, equal at temperature 0), completions, the raw
// SSE stream ending in [DONE], reasoning_content from a template that opens a <think> block, a
// tool-call round trip through the template, structured output (response_format json_schema),
// and errors surfacing as the client's APIError.
// Usage: node client_test.mjs BASE_URL MODEL_ID [REASONING_BASE_URL]
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, modelId, reasoningURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused-locally", maxRetries: 0 });
let passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  }
}

const question = [{ role: "user", content: "the quick brown fox" }];

await check("models.list names the served model", async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, [modelId]);
});

await check("chat: streamed text equals whole text at temperature 0", async () => {
  const whole = await client.chat.completions.create({
    model: modelId, messages: question, temperature: 0, max_tokens: 24,
  });
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.ok(["stop", "length"].includes(whole.choices[0].finish_reason));
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
  const stream = await client.chat.completions.create({
    model: modelId, messages: question, temperature: 0, max_tokens: 24, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) text += c.delta.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

await check("completions: text and logprobs", async () => {
  const r = await client.completions.create({
    model: modelId, prompt: "the lazy dog", max_tokens: 5, temperature: 0, logprobs: 2,
  });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices[0].logprobs.tokens.length, r.usage.completion_tokens);
});

await check("raw SSE stream ends with data: [DONE]", async () => {
  const res = await fetch(`${baseURL}/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: question, max_tokens: 4, stream: true }),
  });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const body = await res.text();
  assert.ok(body.endsWith("data: [DONE]\n\n"), body.slice(-80));
});

await check("tool-call round trip renders through the template", async () => {
  const tools = [{ type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } }];
  const messages = [
    { role: "user", content: "what time is it?" },
    { role: "assistant", content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "12:00" },
  ];
  const r = await client.chat.completions.create({ model: modelId, messages, tools, max_tokens: 4 });
  assert.ok(r.choices[0].message.content !== undefined);
});

await check("structured output: response_format json_schema parses and fits", async () => {
  const schema = {
    type: "object",
    properties: { ok: { type: "boolean" }, color: { enum: ["red", "green"] } },
    required: ["ok", "color"], additionalProperties: false,
  };
  const r = await client.chat.completions.create({
    model: modelId, messages: question, temperature: 1, seed: 3, max_tokens: 200,
    response_format: { type: "json_schema", json_schema: { name: "thing", schema, strict: true } },
  });
  assert.equal(r.choices[0].finish_reason, "stop");
  const doc = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof doc.ok, "boolean");
  assert.ok(["red", "green"].includes(doc.color), JSON.stringify(doc));
});

await check("bad requests become APIError with the status and OpenAI's error body", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: modelId, messages: question, temperature: 7 }),
    (err) => err instanceof OpenAI.APIError && err.status === 400 && err.param === "temperature");
  await assert.rejects(
    client.chat.completions.create({ model: "no-such-model", messages: question }),
    (err) => err instanceof OpenAI.NotFoundError);
});

if (reasoningURL) {
  await check("reasoning_content is separated from content", async () => {
    const rc = new OpenAI({ baseURL: reasoningURL, apiKey: "x", maxRetries: 0 });
    const whole = await rc.chat.completions.create({
      model: modelId, messages: question, temperature: 0, max_tokens: 12,
    });
    const msg = whole.choices[0].message;
    assert.ok(msg.reasoning_content.length > 0, JSON.stringify(msg));
    const stream = await rc.chat.completions.create({
      model: modelId, messages: question, temperature: 0, max_tokens: 12, stream: true,
    });
    let reasoning = "";
    let content = "";
    for await (const chunk of stream)
      for (const c of chunk.choices) {
        reasoning += c.delta.reasoning_content ?? "";
        content += c.delta.content ?? "";
      }
    assert.equal(reasoning, msg.reasoning_content);
    assert.equal(content, msg.content);
  });
}

console.log(`${passed} checks passed`);
