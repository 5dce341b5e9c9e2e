// Regenerates tests/tokenizer/golden/* with the reference implementations:
//   tokenizers@0.23.2 (Hugging Face's Rust library) for ids and decoded text,
//   @huggingface/jinja for chat-template renders.
// Usage (from the repo root, tools installed outside the repo):
//   npm install --prefix /tmp/tern-tok tokenizers@0.23.2 @huggingface/jinja@0.5.11  # as tools/package.json pins
//   NODE_PATH=/tmp/tern-tok/node_modules node tests/tokenizer/tools/make_golden.mjs MODELS_DIR
// MODELS_DIR holds deepseek_v3/, llama3/, qwen3/ extracted from tests/tokenizer/data/models/*.tar.xz.
// Inputs are built deterministically (seeded PRNG + text files that every Debian system has), so
// the C++ tests read inputs and expected outputs from the same committed files (ids.tar.xz).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");
const { Template } = require("@huggingface/jinja");

const here = path.dirname(new URL(import.meta.url).pathname);
const golden = path.join(here, "..", "golden");
const modelsDir = process.argv[2];
if (!modelsDir) throw new Error("usage: make_golden.mjs MODELS_DIR");

// ---- deterministic input corpus -------------------------------------------------------------
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
const pick = (a) => a[Math.floor(rand() * a.length)];

const handwritten = [
  "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "Hello, world!", "Hello world", " Hello", "hello   world  ",
  "I'M here, she'll go; they've 'S 'll don't", "1234567890", "3.14159 2.71828 -0.5 1e-10 0x1F",
  "12,345,678.90 $100 €20 ¥300", "１２３４５ ²³ ½ Ⅷ ٣٤٥ ४५६", "你好，世界！这是一个测试。", "こんにちは世界、カタカナ テスト",
  "안녕하세요 세계", "Привет, мир! Ёлка.", "مرحبا بالعالم", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Γειά σου Κόσμε",
  "e\u0301 vs \u00e9, A\u030a vs \u00c5, ﬁ ligature, Ｆｕｌｌｗｉｄｔｈ", "👨‍👩‍👧‍👦 🇯🇵 👍🏽 😀😃😄 ❤️",
  "def f(x):\n\treturn x  +  1\n\n\n", "if (a&&b) { return c->d[0]; }\t// comment\r\n",
  "    indented\n        more\n\t\ttabs", "trailing spaces   \n", "a\u00a0b\u3000c\u2028d\u2029e\u200bf",
  "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>", "<｜User｜>What is 2+2?<｜Assistant｜><think>\nEasy.\n</think>\n\n4",
  "<｜User｜", "<｜User｜><｜User｜>x", "text<think>inner</think>text", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
  "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{}\n```<｜tool▁call▁end｜>",
  "a".repeat(300), "ab".repeat(200), " ".repeat(100) + "x", "\n".repeat(50), "!".repeat(80), "9".repeat(100),
  "https://example.com/path?q=1&r=2#frag", "user@example.org", "C:\\Program Files\\x", "snake_case camelCase PascalCase kebab-case",
  "SELECT * FROM t WHERE a = 'b';", "<div class=\"x\">&amp;</div>", "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$",
  "ṩ̃ ǅ ſ ß ẞ İ ı", "\u0000\u0001\u001f\u007f", "\ud83d\ude00".repeat(10), "mixed 中文 English 日本語 한국어 123 😀",
];

const readLines = (file, n, every = 1) => {
  try {
    return fs.readFileSync(file, "utf8").split("\n").filter((_, i) => i % every === 0).slice(0, n);
  } catch { return []; }
};
const fileLines = [
  ...readLines("/usr/share/common-licenses/GPL-3", 400),
  ...readLines("/usr/share/common-licenses/Apache-2.0", 150),
  ...readLines("/usr/include/c++/12/bits/stl_vector.h", 500),
  ...readLines("/usr/lib/python3.11/json/decoder.py", 300),
  ...readLines("/usr/lib/python3.11/argparse.py", 400, 3),
];

const ranges = [
  [0x20, 0x7e, 40], [0x30, 0x39, 8], [0xa0, 0x24f, 4], [0x370, 0x3ff, 2], [0x400, 0x4ff, 3], [0x590, 0x6ff, 2],
  [0x900, 0x97f, 2], [0xe00, 0xe7f, 1], [0x3040, 0x30ff, 4], [0x4e00, 0x9fa5, 8], [0x9fa6, 0x9fff, 1], [0xac00, 0xd7a3, 3],
  [0x300, 0x36f, 1], [0x2000, 0x206f, 1], [0xff00, 0xffef, 2], [0x1f300, 0x1f64f, 4], [0x1f900, 0x1f9ff, 1],
  [0x20000, 0x2a6df, 1], [0x2070, 0x209f, 1], [0x2150, 0x218f, 1], [0x9, 0xd, 3],
];
const totalW = ranges.reduce((s, r) => s + r[2], 0);
const randChar = () => {
  let x = rand() * totalW;
  for (const [lo, hi, w] of ranges) { if ((x -= w) < 0) return String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1))); }
  return "a";
};
const words = fileLines.join(" ").split(/\s+/).filter(Boolean);

function randomLines(addedTokens, n) {
  const out = [];
  for (let i = 0; i < n; ++i) {
    const kind = i % 4;
    let s = "";
    const len = 1 + Math.floor(rand() * 60);
    for (let k = 0; k < len; ++k) {
      if (kind === 0) s += randChar();
      else if (kind === 1) s += pick(words) + pick([" ", " ", " ", "  ", "\t", "\n", ", ", ". ", ""]);
      else if (kind === 2) s += rand() < 0.15 && addedTokens.length ? pick(addedTokens) : (rand() < 0.5 ? pick(words) + " " : randChar());
      else s += pick(["", " ", "\n", "  "]) + String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 8)))) + randChar();
    }
    out.push(s);
  }
  return out;
}

// ---- tokenizer goldens ------------------------------------------------------------------------
function derive(name, tok) {
  // R1-Distill-Qwen: the Qwen2 vocabulary with DeepSeek's re-purposed ids (spec §13.3) and the
  // TemplateProcessing post-processor that prepends BOS 151646. Built from the Qwen3 file; the
  // C++ test applies the same patch (tokenizer_test_util.cpp).
  const derived = JSON.parse(fs.readFileSync(path.join(here, "..", "data", "derived.json"), "utf8"));
  if (derived[name] && derived[name].full) return derived[name].full;
  if (derived[name]) {
    const d = derived[name];
    const t = JSON.parse(JSON.stringify(tok));
    t.normalizer = d.normalizer; t.pre_tokenizer = d.pre_tokenizer; t.post_processor = d.post_processor;
    t.added_tokens.push(...d.added);
    return t;
  }
  if (name !== "r1_distill_qwen") return tok;
  const t = JSON.parse(JSON.stringify(tok));
  const names = {151643: "<｜end▁of▁sentence｜>", 151644: "<｜User｜>", 151645: "<｜Assistant｜>", 151646: "<｜begin▁of▁sentence｜>",
    151647: "<|EOT|>", 151648: "<think>", 151649: "</think>"};
  for (const a of t.added_tokens) if (names[a.id]) { a.content = names[a.id]; a.special = [151643, 151646].includes(a.id); }
  const bos = {SpecialToken: {id: "<｜begin▁of▁sentence｜>", type_id: 0}};
  t.post_processor = {type: "TemplateProcessing", single: [bos, {Sequence: {id: "A", type_id: 0}}],
    pair: [bos, {Sequence: {id: "A", type_id: 0}}, bos, {Sequence: {id: "B", type_id: 1}}],
    special_tokens: {"<｜begin▁of▁sentence｜>": {id: "<｜begin▁of▁sentence｜>", ids: [151646], tokens: ["<｜begin▁of▁sentence｜>"]}}};
  return t;
}

async function tokenizerGolden(name, dirName) {
  const tokJson = derive(name, JSON.parse(fs.readFileSync(path.join(modelsDir, dirName, "tokenizer.json"), "utf8")));
  const tok = Tokenizer.fromString(JSON.stringify(tokJson));
  const added = tokJson.added_tokens.map((a) => a.content);
  const synth = name.startsWith("synth");
  const extra = synth ? ["[L]", " [L] ", "a [L]b", "[R]  x", "x[R]\n\ny", "word words sword word_ word.", "ﬁ fi ｆｉ", "  [LR]  ", "ab-cd-ef", "aab abab ab", "A-B C"] : [];
  const inputs = [...handwritten, ...extra, ...fileLines, ...randomLines(added.slice(0, 40).concat(added.slice(-20)), synth ? 600 : 1800)];
  const lines = [];
  for (const text of inputs) {
    const enc = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = Array.from(enc.getIds());
    const decoded = await tok.decode(ids, false);
    const skipped = await tok.decode(ids, true);
    // decoded/skipped are stored only where they differ from the text / from decoded.
    const rec = { text, ids };
    if (decoded !== text) rec.decoded = decoded;
    if (skipped !== decoded) rec.skipped = skipped;
    lines.push(JSON.stringify(rec));
  }
  fs.mkdirSync(path.join(golden, "ids"), { recursive: true });
  fs.writeFileSync(path.join(golden, "ids", `${name}.jsonl`), lines.join("\n") + "\n");
  console.log(name, lines.length, "lines");
}

// ---- chat-template goldens --------------------------------------------------------------------
const weatherTool = { type: "function", function: { name: "get_weather", description: "Get the weather in a city.",
  parameters: { type: "object", properties: { city: { type: "string", description: "City name" },
    unit: { type: "string", enum: ["c", "f"] } }, required: ["city"] } } };
const call = (name, args) => ({ type: "function", function: { name, arguments: args } });
const conversations = [
  [{ role: "user", content: "Hello!" }],
  [{ role: "system", content: "You are helpful." }, { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "<think>\nEasy.\n</think>\n\n2+2 = 4." }, { role: "user", content: "And 3+3?" }],
  [{ role: "system", content: "Sys A" }, { role: "system", content: "Sys B" }, { role: "user", content: "  spaced  \n" }],
  [{ role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [call("get_weather", "{\"city\": \"Paris\"}")] },
    { role: "tool", content: "{\"temp\": 21}" }, { role: "assistant", content: "It is 21°C in Paris." }],
  [{ role: "user", content: "Paris and Tokyo?" },
    { role: "assistant", content: null, tool_calls: [call("get_weather", "{\"city\": \"Paris\"}"), call("get_weather", "{\"city\": \"Tokyo\"}")] },
    { role: "tool", content: "21" }, { role: "tool", content: "25" }],
  [{ role: "user", content: "多语言 😀 test\twith tabs" }, { role: "assistant", content: "好的。" }, { role: "user", content: "" }],
  [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }, { role: "assistant", content: "<think>hmm</think>Hello" },
    { role: "user", content: "<tool_response>\nx\n</tool_response>" }],
];
// Templates that need dict arguments get them as objects (Qwen/Llama); DeepSeek needs strings.
const objArgs = (conv) => conv.map((m) => m.tool_calls ? { ...m, content: m.content ?? "",
  tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: JSON.parse(c.function.arguments) } })) } : m);
const templates = {
  deepseek_v3: { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", conv: (c) => c },
  deepseek_r1: { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", conv: (c) => c },
  r1_distill_qwen: { bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", conv: (c) => c },
  qwen2_5: { bos: null, eos: "<|im_end|>", conv: objArgs, tools: [weatherTool] },
  qwen3: { bos: null, eos: "<|im_end|>", conv: objArgs, tools: [weatherTool] },
  llama3_2: { bos: "<|begin_of_text|>", eos: "<|eot_id|>", conv: (c) => objArgs(c).filter((m) => !(m.tool_calls && m.tool_calls.length > 1)), tools: [weatherTool] },
  llama3_base: { bos: "<|begin_of_text|>", eos: "<|end_of_text|>", conv: (c) => c },
};

function chatGolden() {
  const lines = [];
  for (const [name, t] of Object.entries(templates)) {
    const source = fs.readFileSync(path.join(here, "..", "data", "templates", `${name}.jinja`), "utf8");
    const tpl = new Template(source);
    for (let i = 0; i < conversations.length; ++i) {
      const messages = t.conv(conversations[i]);
      if (name === "llama3_2" && messages.some((m) => m.tool_calls && m.tool_calls.length !== 1)) continue;
      for (const add_generation_prompt of [true, false]) {
        for (const tools of t.tools && i >= 3 ? [null, t.tools] : [null]) {
          const ctx = { messages, add_generation_prompt, bos_token: t.bos, eos_token: t.eos };
          // A fixed date keeps renders reproducible (the reference defines strftime_now).
          if (name === "llama3_2") ctx.date_string = "26 Jul 2024";
          if (tools) ctx.tools = tools;
          let rendered;
          try { rendered = tpl.render(ctx); } catch (e) { rendered = null; ctx.error = String(e.message ?? e); }
          lines.push(JSON.stringify({ template: name, context: ctx, rendered }));
        }
      }
    }
  }
  // Qwen3 thinking switch.
  const q3 = new Template(fs.readFileSync(path.join(here, "..", "data", "templates", "qwen3.jinja"), "utf8"));
  const ctx = { messages: conversations[0], add_generation_prompt: true, enable_thinking: false, bos_token: null, eos_token: "<|im_end|>" };
  lines.push(JSON.stringify({ template: "qwen3", context: ctx, rendered: q3.render(ctx) }));
  fs.writeFileSync(path.join(golden, "chat_templates.jsonl"), lines.join("\n") + "\n");
  console.log("chat_templates", lines.length, "renders");
}

await tokenizerGolden("deepseek_v3", "deepseek_v3");
await tokenizerGolden("llama3", "llama3");
await tokenizerGolden("qwen3", "qwen3");
await tokenizerGolden("r1_distill_qwen", "qwen3");
await tokenizerGolden("synth_a", "llama3");
await tokenizerGolden("synth_b", "llama3");
await tokenizerGolden("synth_c", "llama3");
chatGolden();
// The id goldens are large and repetitive: commit them as one archive (CMake extracts it).
const { execSync } = require("node:child_process");
execSync("tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - ids | xz -9 -T1 > ids.tar.xz", { cwd: golden });
fs.rmSync(path.join(golden, "ids"), { recursive: true });
