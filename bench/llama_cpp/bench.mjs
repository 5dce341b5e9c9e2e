// llama.cpp's prefill and decode speed on a GGUF, for side-by-side runs with `tern bench` on the
// same file (docs/benchmarks.md). Uses npm node-llama-cpp@3.22.1's prebuilt CPU binary:
//
//   npm install --prefix /tmp/nlc node-llama-cpp@3.22.1 --ignore-scripts
//   cp bench/llama_cpp/bench.mjs /tmp/nlc/ && node /tmp/nlc/bench.mjs MODEL.gguf [-p 512] [-n 128] [--threads 2]
//
// (An ES module resolves its imports from its own folder, not NODE_PATH, hence the copy.)
// Prefill: one batch of p random ids (the logits of the last); decode: n steps of one token
// each, greedy. Prints one JSON line like `tern bench --json`'s speed keys.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const modelPath = args[0];
const P = opt("-p", 512), N = opt("-n", 128), threads = opt("--threads", 2);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, useMmap: true});
const ctx = await model.createContext({contextSize: P + N + 16, batchSize: P, threads,
                                      flashAttention: false});
const seq = ctx.getSequence();
const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
let state = 12345;
const rand = () => (state = (state * 1103515245 + 12345) % 2147483648) % Math.min(vocab, 100000);
const prompt = Array.from({length: P}, rand);
// An untimed warm-up on a short prompt in its own context, as tern bench does.
{
  const warm = await model.createContext({contextSize: 64, batchSize: 16, threads});
  await warm.getSequence().controlledEvaluate([...prompt.slice(0, 15), [prompt[15], {generateNext: {token: true}}]]);
  await warm.dispose();
}
let t0 = performance.now();
const out = await seq.controlledEvaluate([...prompt.slice(0, P - 1),
                                          [prompt[P - 1], {generateNext: {token: true}}]]);
const prefill_s = (performance.now() - t0) / 1000;
let tok = out[P - 1].next.token;
t0 = performance.now();
for (let i = 0; i < N; ++i) {
  const r = await seq.controlledEvaluate([[tok, {generateNext: {token: true}}]]);
  tok = r[0].next.token;
}
const decode_s = (performance.now() - t0) / 1000;
console.log(JSON.stringify({engine: "llama.cpp (node-llama-cpp 3.22.1 prebuilt)", model: modelPath,
                            prompt: P, gen: N, threads,
                            prefill_tokens_per_s: P / prefill_s, decode_tokens_per_s: N / decode_s,
                            ttft_s: prefill_s}));
await ctx.dispose();
await model.dispose();
