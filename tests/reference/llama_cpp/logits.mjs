// Usage: node logits.mjs MODEL.gguf IDS_JSON OUT.npy
// Evaluates the token ids in llama.cpp (through node-llama-cpp, CPU only, one thread) and writes
// the raw next-token logits of every position as a float32 [T, vocab] .npy file.
import {writeFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, idsJson, outPath] = process.argv.slice(2);
const ids = JSON.parse(idsJson);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const ctx = await model.createContext({
  contextSize: 64, batchSize: 64, threads: 1, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const res = await seq.controlledEvaluate(ids.map((t) => [t, {generateNext: {logits: true}}]));
const rows = res.map((r, i) => {
  if (!r?.next?.logits) throw new Error(`no logits for position ${i}`);
  const row = new Float32Array(vocab);
  for (const [tok, v] of r.next.logits) row[tok] = v;
  return row;
});
let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows.length}, ${vocab}), }`;
header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
const head = Buffer.alloc(10);
head.write("\x93NUMPY", 0, "latin1");
head[6] = 1;
head[7] = 0;
head.writeUInt16LE(header.length, 8);
const data = Buffer.concat(rows.map((r) => Buffer.from(r.buffer)));
writeFileSync(outPath, Buffer.concat([head, Buffer.from(header, "latin1"), data]));
console.log(`${outPath}: ${rows.length} x ${vocab} logits from llama.cpp`);
await ctx.dispose();
await model.dispose();
