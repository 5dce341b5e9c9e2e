// Encoding throughput of the reference Rust library (tokenizers@0.23.2) on a corpus, one line per
// input, as MB/s: one thread (TOKENIZERS_PARALLELISM=false) or all threads (encodeBatch, rayon).
// Run by tools/bench.sh next to `tern tokenizer bench` so both see the same corpus and machine.
// Usage: NODE_PATH=.../node_modules node bench.mjs MODEL_DIR CORPUS [REPEAT] [CHUNK_LINES]
// CHUNK_LINES > 1 joins that many lines (with "\n") into one input, amortizing per-call overhead.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");
const [modelDir, corpus, repeatArg, chunkArg] = process.argv.slice(2);
const repeat = Number(repeatArg ?? 3);
const tok = Tokenizer.fromFile(path.join(modelDir, "tokenizer.json"));
const raw = fs.readFileSync(corpus, "utf8").split("\n");
if (raw.length && raw[raw.length - 1] === "") raw.pop();
const chunk = Number(chunkArg ?? 1);
const lines = [];
for (let i = 0; i < raw.length; i += chunk) lines.push(raw.slice(i, i + chunk).join("\n"));
const bytes = lines.reduce((s, l) => s + Buffer.byteLength(l, "utf8"), 0);
let best = Infinity, tokens = 0;
for (let r = 0; r < repeat; ++r) {
  const t0 = process.hrtime.bigint();
  const encs = await tok.encodeBatch(lines, { addSpecialTokens: false });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  tokens = encs.reduce((s, e) => s + e.getIds().length, 0);
  best = Math.min(best, secs);
}
console.log(JSON.stringify({ lines: lines.length, bytes, tokens, parallel: process.env.TOKENIZERS_PARALLELISM !== "false", mb_per_s: +(bytes / 1e6 / best).toFixed(2) }));
