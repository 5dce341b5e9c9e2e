#include "serve/chat_page.h"

namespace tern::serve {

std::string_view chat_page_html() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tern chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: flex; flex-direction: column;
         height: 100vh; background: #f6f7f9; color: #1d2129; }
  header { padding: 0.6em 1em; background: #243447; color: #fff; font-weight: 600; }
  header small { font-weight: 400; opacity: 0.8; margin-left: 0.6em; }
  #log { flex: 1; overflow-y: auto; padding: 1em; }
  .msg { max-width: 52em; margin: 0 auto 0.8em; padding: 0.6em 0.9em; border-radius: 8px;
         white-space: pre-wrap; line-height: 1.4; }
  .user { background: #dbe8ff; }
  .assistant { background: #fff; border: 1px solid #e1e4e8; }
  .error { background: #ffe3e3; }
  details { color: #57606a; margin-bottom: 0.4em; }
  details summary { cursor: pointer; font-size: 0.9em; }
  form { display: flex; gap: 0.5em; padding: 0.8em 1em; background: #fff;
         border-top: 1px solid #e1e4e8; }
  textarea { flex: 1; resize: none; height: 3.2em; font: inherit; padding: 0.4em; }
  button { font: inherit; padding: 0 1.2em; }
</style>
</head>
<body>
<header>tern chat<small id="model"></small></header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const log = document.getElementById("log");
const input = document.getElementById("input");
const form = document.getElementById("form");
const send = document.getElementById("send");
const history = [];
let modelId = "";
// Sampling settings from the address (?temperature=0&max_tokens=64&seed=1), for repeatable
// sessions; the server's defaults otherwise.
const settings = {};
for (const [k, v] of new URLSearchParams(location.search))
  if (["temperature", "top_p", "max_tokens", "seed"].includes(k) && v !== "" && !isNaN(+v))
    settings[k] = +v;
// A server started with --api-key answers 401: ask when a message is sent, keep the key for
// this tab only.
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem("tern-api-key");
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
async function call(path, init) {
  let res = await fetch(path, { ...init, headers: headers() });
  if (res.status === 401) {
    const key = prompt("This server needs an API key:");
    if (key) {
      sessionStorage.setItem("tern-api-key", key);
      res = await fetch(path, { ...init, headers: headers() });
    }
  }
  return res;
}

fetch("v1/models", { headers: headers() }).then(r => r.json()).then(j => {
  if (j.data && j.data.length) {
    modelId = j.data[0].id;
    document.getElementById("model").textContent = modelId;
  }
}).catch(() => {});

function bubble(cls) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  log.appendChild(div);
  return div;
}

async function ask(text) {
  history.push({ role: "user", content: text });
  bubble("user").textContent = text;
  const box = bubble("assistant");
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Reasoning";
  const thoughts = document.createElement("div");
  details.appendChild(summary);
  details.appendChild(thoughts);
  const answer = document.createElement("div");
  answer.className = "answer";
  box.appendChild(answer);
  let content = "";
  const res = await call("v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ ...settings, model: modelId || undefined, messages: history, stream: true })
  });
  if (!res.ok) {
    const j = await res.json().catch(() => ({}));
    box.className = "msg error";
    box.textContent = (j.error && j.error.message) || ("HTTP " + res.status);
    history.pop();
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: ")) continue;
      const data = event.slice(6);
      if (data === "[DONE]") continue;
      const j = JSON.parse(data);
      if (j.error) { answer.textContent += "\n[" + j.error.message + "]"; continue; }
      for (const c of j.choices || []) {
        const d = c.delta || {};
        if (d.reasoning_content) {
          if (!details.parentNode) box.insertBefore(details, answer);
          thoughts.textContent += d.reasoning_content;
        }
        if (d.content) { content += d.content; answer.textContent = content; }
      }
      log.scrollTop = log.scrollHeight;
    }
  }
  history.push({ role: "assistant", content });
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  send.disabled = true;
  try { await ask(text); } catch (err) { bubble("error").textContent = String(err); }
  send.disabled = false;
  input.focus();
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});
</script>
</body>
</html>
)HTML";
}

}  // namespace tern::serve
