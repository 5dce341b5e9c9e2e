// The chat page served at `/` in a real browser: headless Chromium driven over the DevTools
// protocol on a pipe (no npm packages, no network). Types a message, presses Enter, and checks
// that the answer arrives in several streamed updates; on a reasoning model, that the reasoning
// lands in the collapsible block. Keeps a screenshot of each page as a test artifact.
// A server started with --api-key makes the page ask for the key in a prompt dialog, answered
// here. Usage: node chat_page_test.mjs PLAIN_URL REASONING_URL KEYED_URL KEY PROFILE ARTIFACTS
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";

const [plainUrl, reasoningUrl, keyedUrl, apiKey, profile, artifacts] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "chromium";
const deadline = Date.now() + 120_000;

const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
  `--user-data-dir=${profile}`, "--remote-debugging-pipe", "about:blank",
], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
let stderr = "";
browser.stderr.on("data", (d) => { stderr += d; });

// DevTools messages are JSON separated by NUL bytes: commands on fd 3, replies on fd 4.
let nextId = 1, inbox = Buffer.alloc(0);
const pending = new Map(), listeners = [];
browser.stdio[4].on("data", (chunk) => {
  inbox = Buffer.concat([inbox, chunk]);
  let end;
  while ((end = inbox.indexOf(0)) >= 0) {
    const msg = JSON.parse(inbox.subarray(0, end).toString("utf8"));
    inbox = inbox.subarray(end + 1);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    } else {
      for (const l of listeners) l(msg);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  browser.stdio[3].write(JSON.stringify({ id, method, params, sessionId }) + "\0");
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
function once(method, sessionId) {
  return new Promise((resolve) => {
    const l = (m) => {
      if (m.method === method && m.sessionId === sessionId) {
        listeners.splice(listeners.indexOf(l), 1);
        resolve(m.params);
      }
    };
    listeners.push(l);
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

async function chat(url, name) {
  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => send(method, params, sessionId);
  const js = async (expression) =>
    (await page("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true })).result.value;
  await page("Page.enable");
  // A slow line (20 kB/s), so the answer's events reach the page one by one as a user on a
  // remote connection would see them, whatever the speed of this machine.
  await page("Network.enable");
  await page("Network.emulateNetworkConditions",
             { offline: false, latency: 0, downloadThroughput: 20000, uploadThroughput: -1 });
  let asked = 0;
  listeners.push((m) => {
    if (m.sessionId !== sessionId || m.method !== "Page.javascriptDialogOpening") return;
    asked++;
    page("Page.handleJavaScriptDialog", { accept: true, promptText: apiKey });
  });
  const loaded = once("Page.loadEventFired", sessionId);
  await page("Page.navigate", { url });
  await loaded;
  // Count DOM updates to the conversation: a streamed answer arrives in many.
  await js(`window.updates = 0; new MutationObserver(() => window.updates++).observe(
      document.getElementById("log"), { subtree: true, childList: true, characterData: true }); 1`);
  await js(`document.getElementById("input").focus(); 1`);
  await page("Input.insertText", { text: "hello there" });
  for (const type of ["keyDown", "keyUp"])
    await page("Input.dispatchKeyEvent", { type, key: "Enter", code: "Enter", windowsVirtualKeyCode: 13 });
  let state;
  for (;;) {
    state = await js(`({
      user: document.querySelector(".msg.user")?.textContent,
      answer: document.querySelector(".msg.assistant .answer")?.textContent ?? "",
      reasoning: document.querySelector(".msg.assistant details div")?.textContent ?? "",
      error: document.querySelector(".msg.error")?.textContent,
      busy: document.getElementById("send").disabled,
      updates: window.updates })`);
    if ((state.answer || state.reasoning || state.error) && !state.busy) break;
    if (Date.now() > deadline) throw new Error(name + ": no answer in time: " + JSON.stringify(state));
    await sleep(100);
  }
  const shot = await page("Page.captureScreenshot", { format: "png" });
  writeFileSync(`${artifacts}/chat_page_${name}.png`, Buffer.from(shot.data, "base64"));
  check(!state.error, `${name}: no error (${state.error ?? ""})`);
  check(state.user === "hello there", `${name}: the typed message is shown`);
  check(state.updates > 3,
        `${name}: the answer streamed in (${state.updates} updates: ${JSON.stringify(state.answer || state.reasoning)})`);
  await send("Target.closeTarget", { targetId });
  return { ...state, asked };
}

try {
  mkdirSync(artifacts, { recursive: true });
  const plain = await chat(plainUrl, "plain");
  check(plain.answer.length > 0 && plain.reasoning === "", "plain: an answer and no reasoning block");
  const reasoning = await chat(reasoningUrl, "reasoning");
  check(reasoning.reasoning.length > 0, "reasoning: the reasoning is in the collapsible block");
  check(plain.asked === 0, "plain: no API key asked for");
  const keyed = await chat(keyedUrl, "keyed");
  check(keyed.asked === 1 && keyed.answer === plain.answer,
        `keyed: the page asked for the API key once (${keyed.asked}) and got the same answer`);
  // Let the browser finish writing its profile before the caller removes it.
  const exited = new Promise((r) => browser.on("exit", r));
  await send("Browser.close").catch(() => {});
  await Promise.race([exited, sleep(5000)]);
} catch (e) {
  console.error(e.message);
  if (stderr) console.error("chromium said:\n" + stderr.slice(-2000));
  browser.kill("SIGKILL");
  process.exit(1);
}
process.exit(0);
