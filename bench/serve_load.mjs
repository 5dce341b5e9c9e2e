// A load generator for OpenAI-compatible servers (tern serve, llama-server), loopback only:
// S concurrent streams, each sending streaming /v1/completions requests one after another until
// R requests are done in all. Prints one JSON line: aggregate generated tokens/s over the wall
// time, and time to first token p50/p99.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080/v1 --streams 8 --requests 16
//        [--prompt-words 128] [--max-tokens 64] [--ban 151643,151645] [--label tern]
//
// Prompts are distinct random word sequences (no shared prefix to cache); --ban gives the
// end-of-text ids a logit_bias of -100 so every request generates exactly --max-tokens.
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const url = opt("--url", "http://127.0.0.1:8080/v1");
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url)) {
  console.error("serve_load: only loopback servers are measured");
  process.exit(2);
}
const streams = Number(opt("--streams", 8)), total = Number(opt("--requests", 2 * streams));
const words = Number(opt("--prompt-words", 128)), maxTokens = Number(opt("--max-tokens", 64));
const ban = opt("--ban", "").split(",").filter(Boolean);
const label = opt("--label", "");

const vocabulary = ("the of and to in is was for on that with as by at from his her they this " +
  "river stone light garden winter market signal engine harbor letter forest window morning").split(" ");
let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const prompt = () => Array.from({length: words},
  () => vocabulary[Math.floor(rand() * vocabulary.length)]).join(" ");

async function one() {
  const body = {prompt: prompt(), max_tokens: maxTokens, temperature: 0, stream: true,
                stream_options: {include_usage: true}};
  if (ban.length) body.logit_bias = Object.fromEntries(ban.map((id) => [id, -100]));
  const t0 = performance.now();
  const res = await fetch(url + "/completions", {method: "POST", body: JSON.stringify(body),
                                                 headers: {"Content-Type": "application/json"}});
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader(), decoder = new TextDecoder();
  let buffer = "", first = 0, chunks = 0, usage = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: {")) continue;
      const j = JSON.parse(event.slice(6));
      if (j.usage && j.usage.completion_tokens) usage = j.usage.completion_tokens;
      if ((j.choices || []).some((c) => c.text)) {
        if (!first) first = performance.now() - t0;
        chunks++;
      }
    }
  }
  return {ttft: first / 1000, tokens: usage || chunks};
}

let next = 0;
const results = [];
const start = performance.now();
await Promise.all(Array.from({length: streams}, async () => {
  while (next < total) {
    next++;
    results.push(await one());
  }
}));
const wall = (performance.now() - start) / 1000;
const ttft = results.map((r) => r.ttft).sort((a, b) => a - b);
const pct = (p) => ttft[Math.min(ttft.length - 1, Math.floor(p * ttft.length))];
const tokens = results.reduce((s, r) => s + r.tokens, 0);
console.log(JSON.stringify({label, streams, requests: results.length, tokens, wall_s: +wall.toFixed(2),
  tokens_per_s: +(tokens / wall).toFixed(2), ttft_p50_s: +pct(0.5).toFixed(3),
  ttft_p99_s: +pct(0.99).toFixed(3)}));
