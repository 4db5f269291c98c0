// The reference TypeScript MCP client (npm @modelcontextprotocol/sdk) as a scriptable peer for
// latchkey's gateway tests:
//
//     node tests/peers/mcp-client.mjs stdio <command> [args...]     (the child inherits this environment)
//     node tests/peers/mcp-client.mjs http <url>                     (bearer token from MCP_TOKEN, if set)
//
// MCP_STEPS is a JSON array of steps, run in order after `initialize`:
//   {"list": "tools" | "prompts" | "resources"}      → the names (URIs for resources), in order
//   {"call": "<tool>", "arguments": {...}}          → the CallToolResult
//   {"call": …, "cancelAfterMs": 500}               → the same, cancelled after 500 ms (the SDK
//                                                     sends notifications/cancelled): an error
//   {"read": "<uri>"}                               → the ReadResourceResult
//   {"wait": "tools" | "prompts" | "resources", "ms": 10000}
//                                                   → waits for that list_changed notification
//                                                     (counted from the start, so one that came
//                                                     during an earlier step counts)
//   {"sleep": <ms>}
//   {"post": "<url>"}                              → POSTs to a test peer, answers the HTTP status
//   {"wait": "elicitation", "ms": 30000}            → waits for notifications/elicitation/complete
//                                                     (counted like list_changed), answers the ids
//   {"follow": "elicitation"}                       → the test's stand-in for a person: opens the URL
//                                                     of the last URL elicitation a call was refused
//                                                     with in tests/peers/consent.mjs (CONSENT_*
//                                                     from this environment); answers its exit code
//
// MCP_ELICITATION=url declares URL-mode elicitation (2025-11-25) in the client's capabilities.
// Each step prints one JSON line, {"step": i, "ok": true, "result": …} or {"step": i, "ok": false,
// "error": "…", "code": …, "data": …} (the JSON-RPC error's code and data, when it had them); a
// failed step does not stop the script. Exit code 0 when the client connected and
// closed cleanly, 1 otherwise (with the reason on stderr).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ElicitationCompleteNotificationSchema,
  ErrorCode,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const [mode, target, ...rest] = process.argv.slice(2);
const steps = JSON.parse(process.env.MCP_STEPS ?? '[]');

function transport() {
  if (mode === 'stdio') {
    return new StdioClientTransport({ command: target, args: rest, env: { ...process.env }, stderr: 'inherit' });
  }
  if (mode === 'http') {
    const headers = process.env.MCP_TOKEN ? { Authorization: `Bearer ${process.env.MCP_TOKEN}` } : {};
    return new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
  }
  throw new Error(`unknown mode ${mode}: use stdio or http`);
}

const capabilities = process.env.MCP_ELICITATION === 'url' ? { elicitation: { url: {} } } : {};
const client = new Client({ name: 'latchkey-test-client', version: '1.0.0' }, { capabilities });
const seen = { tools: 0, prompts: 0, resources: 0, elicitation: 0 };
const completed = [];
let lastElicitation;
const waiters = [];
const notified = (kind) => {
  seen[kind] += 1;
  for (const waiter of waiters.splice(0)) waiter();
};
client.setNotificationHandler(ToolListChangedNotificationSchema, () => notified('tools'));
client.setNotificationHandler(PromptListChangedNotificationSchema, () => notified('prompts'));
client.setNotificationHandler(ResourceListChangedNotificationSchema, () => notified('resources'));
client.setNotificationHandler(ElicitationCompleteNotificationSchema, (notification) => {
  completed.push(notification.params.elicitationId);
  notified('elicitation');
});

async function waitFor(kind, ms) {
  const deadline = Date.now() + ms;
  while (seen[kind] === 0) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${kind}/list_changed notification within ${ms} ms`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      waiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }
  return kind === 'elicitation' ? { completed } : { notifications: seen[kind] };
}

// A person following the link: the scripted browser, run on the URL, until it is done.
function follow() {
  if (!lastElicitation) throw new Error('no call was refused with a URL elicitation yet');
  const consent = path.join(path.dirname(fileURLToPath(import.meta.url)), 'consent.mjs');
  const browser = spawn(process.execPath, [consent, lastElicitation.url], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    browser.on('error', reject);
    browser.on('exit', (code) => resolve({ exitCode: code }));
  });
}

async function run(step) {
  if (step.list === 'tools') return (await client.listTools()).tools.map((tool) => tool.name);
  if (step.list === 'prompts') return (await client.listPrompts()).prompts.map((prompt) => prompt.name);
  if (step.list === 'resources') return (await client.listResources()).resources.map((resource) => resource.uri);
  if (step.call) {
    const signal = step.cancelAfterMs === undefined ? undefined : AbortSignal.timeout(step.cancelAfterMs);
    return client.callTool({ name: step.call, arguments: step.arguments ?? {} }, undefined, { signal });
  }
  if (step.read) return client.readResource({ uri: step.read });
  if (step.wait) return waitFor(step.wait, step.ms ?? 10000);
  if (step.sleep !== undefined) return new Promise((resolve) => setTimeout(() => resolve(null), step.sleep));
  if (step.post) return (await fetch(step.post, { method: 'POST' })).status;
  if (step.follow === 'elicitation') return follow();
  throw new Error(`unknown step ${JSON.stringify(step)}`);
}

try {
  await client.connect(transport());
} catch (error) {
  console.error(`connecting failed: ${error.stack ?? error}`);
  process.exit(1);
}
for (const [index, step] of steps.entries()) {
  try {
    console.log(JSON.stringify({ step: index, ok: true, result: await run(step) }));
  } catch (error) {
    if (error.code === ErrorCode.UrlElicitationRequired) [lastElicitation] = error.data?.elicitations ?? [];
    console.log(JSON.stringify({ step: index, ok: false, error: String(error.message ?? error), code: error.code, data: error.data }));
  }
}
await client.close();
process.exit(0);
