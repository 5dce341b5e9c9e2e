// Checks that a tokenizer trained by `tern tokenizer train` loads in the reference Rust library
// (tokenizers@0.23.2) and records the reference's ids for varied text; the C++ test
// (bpe_trainer_test.cpp) retrains with the same arguments, requires the identical tokenizer.json,
// and requires tern's ids to equal these.
// Usage: NODE_PATH=.../node_modules node tests/tokenizer/tools/check_trained.mjs path/to/tern
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");
const here = path.dirname(new URL(import.meta.url).pathname);
const tern = process.argv[2];
if (!tern) throw new Error("usage: check_trained.mjs TERN_BINARY");
const out = path.join(here, "..", "golden", "trained");
const corpus = path.join(here, "..", "data", "kjv_excerpt.txt");
// Keep these arguments in sync with bpe_trainer_test.cpp.
execFileSync(tern, ["tokenizer", "train", "--corpus", corpus, "--vocab-size", "1500", "--special", "<|tool|>", "--out", out], { stdio: "inherit" });

const tok = Tokenizer.fromFile(path.join(out, "tokenizer.json"));
const kjv = fs.readFileSync(corpus, "utf8").split("\n").slice(0, 300);
const varied = [
  "", "Hello, world!", "In the beginning God created the heaven and the earth.", "<｜begin▁of▁sentence｜>x<|tool|>y",
  "你好，世界！こんにちは", "def f(x):\n\treturn x  +  1\n", "12345678 3.14", "emoji 😀👍🏽 and ünïcödé", "   spaces   ",
  "<｜end▁of▁sentence｜><｜end▁of▁sentence｜>",
];
const lines = [];
for (const text of [...varied, ...kjv]) {
  const ids = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
  const plain = Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
  const decoded = await tok.decode(plain, false);
  lines.push(JSON.stringify({ text, ids, plain, roundtrip: decoded === text }));
}
fs.writeFileSync(path.join(out, "hf_ids.jsonl"), lines.join("\n") + "\n");
const bad = lines.filter((l) => !JSON.parse(l).roundtrip).length;
console.log(`reference loaded the trained tokenizer; ${lines.length} lines encoded; ${bad} failed to round-trip`);
