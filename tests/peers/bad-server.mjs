// A small, deliberately unreliable MCP server (stdio, newline-delimited JSON-RPC written by hand,
// so that it can break the protocol on purpose) for the gateway's bad-input tests:
//
//     node tests/peers/bad-server.mjs [garbage-init]
//
// Tools: `echo` (answers `echo: <message>`, after a garbage line on stdout that a client must
// skip), `crash` (exits mid-call without answering), `garbage` (answers with a line that is not
// JSON, and never with a real response), `sleep` (answers after `ms` milliseconds), `log` (answers
// what BAD_SERVER_LOG holds), `verbatim` (answers with a field no MCP type has, `x-verbatim`, which
// only a relay that passes answers on as they are keeps).
// With `garbage-init` it answers `initialize` with garbage too, so it never starts.
// BAD_SERVER_LOG, a file: each start appends `start <pid>`, so tests can see restarts, each `sleep`
// call appends `sleeping <request id>` as it begins, so tests can act while a call is in flight,
// and each `notifications/cancelled` appends `cancelled <request id>`.
import fs from 'node:fs';
import readline from 'node:readline';

const mode = process.argv[2] ?? 'normal';
if (process.env.BAD_SERVER_LOG) fs.appendFileSync(process.env.BAD_SERVER_LOG, `start ${process.pid}\n`);

const versions = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const answer = (id, result) => send({ jsonrpc: '2.0', id, result });
const text = (value) => ({ content: [{ type: 'text', text: value }] });
const tools = ['echo', 'crash', 'garbage', 'sleep', 'log', 'verbatim'].map((name) => ({
  name,
  description: `the ${name} tool`,
  inputSchema: { type: 'object', properties: { message: { type: 'string' }, ms: { type: 'number' } } },
}));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const message = JSON.parse(line);
  if (message.method === 'notifications/cancelled' && process.env.BAD_SERVER_LOG) {
    fs.appendFileSync(process.env.BAD_SERVER_LOG, `cancelled ${message.params.requestId}\n`);
  }
  if (message.id === undefined) return;
  switch (message.method) {
    case 'initialize':
      if (mode === 'garbage-init') {
        process.stdout.write('this is not JSON-RPC\n');
        return;
      }
      answer(message.id, {
        // As the SDKs answer: the version asked for if this server knows it, else its newest.
        protocolVersion: versions.includes(message.params.protocolVersion) ? message.params.protocolVersion : versions[0],
        capabilities: { tools: {} },
        serverInfo: { name: 'bad-server', version: '1.0.0' },
      });
      return;
    case 'tools/list':
      answer(message.id, { tools });
      return;
    case 'tools/call': {
      const { name, arguments: args = {} } = message.params;
      if (name === 'echo') {
        process.stdout.write('{"garbage": \n');
        answer(message.id, text(`echo: ${args.message}`));
      } else if (name === 'crash') {
        process.exit(3);
      } else if (name === 'garbage') {
        process.stdout.write(`<html>${message.id} is not a response</html>\n`);
      } else if (name === 'verbatim') {
        answer(message.id, { ...text('as written'), 'x-verbatim': { kept: true, id: message.id } });
      } else if (name === 'log') {
        answer(message.id, text(process.env.BAD_SERVER_LOG ? fs.readFileSync(process.env.BAD_SERVER_LOG, 'utf8') : ''));
      } else if (name === 'sleep') {
        if (process.env.BAD_SERVER_LOG) fs.appendFileSync(process.env.BAD_SERVER_LOG, `sleeping ${message.id}\n`);
        setTimeout(() => answer(message.id, text(`slept ${args.ms} ms`)), args.ms ?? 0);
      } else {
        send({ jsonrpc: '2.0', id: message.id, error: { code: -32602, message: `no tool ${name}` } });
      }
      return;
    }
    default:
      send({ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: `no method ${message.method}` } });
  }
});
