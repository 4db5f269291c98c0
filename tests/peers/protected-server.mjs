// A remote MCP server that wants OAuth tokens from the test's authorization server
// (tests/peers/oidc-server.mjs), for the gateway's remote-upstream tests:
//
//     ISSUER=http://127.0.0.1:<port> node tests/peers/protected-server.mjs
//
// Prints `ready <url>` (its MCP endpoint, http://127.0.0.1:<port>/mcp) once it listens.
// Streamable HTTP (stateless, the SDK's McpServer) on 127.0.0.1. Every request must carry
// `Authorization: Bearer <token>`; the token is checked by RFC 7662 introspection as the
// confidential `post-client`, and anything not active gets a 401 with a `WWW-Authenticate`
// challenge, as a real resource server answers an expired or revoked token.
// Tools: `whoami` → `{"sub", "client_id", "token": <first 12 hex digits of the token's SHA-256>}`,
// so a test can tell tokens apart without seeing them.
// `headers` → `{"x-…": <value>…, "authorization": [<fingerprint of each Authorization value>]}`:
// the request's own headers (a catalog's `headers`), and every Authorization it carried.
// `admin` answers only a token with the `admin` scope, which the test's tokens never have: any
// other gets a 403 `insufficient_scope` challenge naming it, as a server that wants a step-up.
// `POST /revoke-last` revokes (RFC 7009) the last token it accepted, as the client it was issued
// to (the server's pre-registered confidential clients): the test's way of making a token stop
// working before it expires.
// Its RFC 9728 metadata (`/.well-known/oauth-protected-resource/mcp`) names AUTHORIZATION_SERVER
// (default: ISSUER) as its authorization server; `POST /authorization-server` with another URL as
// the body makes it name that one from then on: a server that turns hostile, or moves.
import crypto from 'node:crypto';
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const issuer = process.env.ISSUER;
if (!issuer) throw new Error('set ISSUER to the authorization server');
// How oidc-server.mjs's confidential clients authenticate: `post-client` in the body, `basic-client`
// with HTTP Basic.
const clients = {
  'post-client': { body: { client_id: 'post-client', client_secret: 'post-secret' }, headers: {} },
  'basic-client': { body: {}, headers: { authorization: `Basic ${Buffer.from('basic-client:basic-secret').toString('base64')}` } },
};
let lastAccepted = null;
let authorizationServer = process.env.AUTHORIZATION_SERVER ?? issuer;

const form = async (path, fields, client = clients['post-client']) => {
  const response = await fetch(`${issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...client.headers },
    body: new URLSearchParams({ ...fields, ...client.body }).toString(),
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return response.headers.get('content-type')?.includes('json') ? response.json() : null;
};

const fingerprint = (token) => crypto.createHash('sha256').update(token).digest('hex').slice(0, 12);

function mcpServer(identity, request) {
  const server = new McpServer({ name: 'protected-test-server', version: '1.0.0' });
  server.registerTool('whoami', { description: 'who the bearer token belongs to', inputSchema: {} }, async () => ({
    content: [{ type: 'text', text: JSON.stringify(identity) }],
  }));
  server.registerTool('headers', { description: "the request's x- headers", inputSchema: {} }, async () => {
    const own = Object.entries(request.headers).filter(([name]) => name.startsWith('x-'));
    // headersDistinct: Node keeps only the first of repeated Authorization headers in `headers`.
    const authorization = (request.headersDistinct.authorization ?? []).map((value) => fingerprint(value.replace(/^Bearer /i, '')));
    return { content: [{ type: 'text', text: JSON.stringify({ ...Object.fromEntries(own), authorization }) }] };
  });
  server.registerTool('admin', { description: 'needs the admin scope', inputSchema: {} }, async () => ({
    content: [{ type: 'text', text: 'admin' }],
  }));
  return server;
}

const readBody = async (request) => {
  let text = '';
  for await (const chunk of request) text += chunk;
  return text ? JSON.parse(text) : undefined;
};

const listener = http.createServer(async (request, response) => {
  try {
    if (request.method === 'POST' && request.url === '/revoke-last') {
      if (lastAccepted) {
        const { token, client_id: clientId } = lastAccepted;
        await form('/token/revocation', { token, token_type_hint: 'access_token' }, clients[clientId]);
      }
      response.writeHead(lastAccepted ? 204 : 409).end();
      return;
    }
    if (request.method === 'POST' && request.url === '/authorization-server') {
      let text = '';
      for await (const chunk of request) text += chunk;
      authorizationServer = text.trim();
      response.writeHead(204).end();
      return;
    }
    if (request.url === '/.well-known/oauth-protected-resource/mcp') {
      const resource = `http://127.0.0.1:${listener.address().port}/mcp`;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ resource, authorization_servers: [authorizationServer], scopes_supported: ['mcp:tools'] }));
      return;
    }
    if (!request.url.startsWith('/mcp')) {
      response.writeHead(404).end();
      return;
    }
    const token = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const introspection = token ? await form('/token/introspection', { token }) : { active: false };
    if (!introspection.active) {
      response.writeHead(401, { 'WWW-Authenticate': 'Bearer error="invalid_token", error_description="the token is not active"' });
      response.end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    const body = request.method === 'POST' ? await readBody(request) : undefined;
    const scopes = (introspection.scope ?? '').split(' ');
    if (body?.method === 'tools/call' && body.params?.name === 'admin' && !scopes.includes('admin')) {
      response.writeHead(403, { 'WWW-Authenticate': 'Bearer error="insufficient_scope", scope="admin", error_description="admin needs the admin scope"' });
      response.end(JSON.stringify({ error: 'insufficient_scope' }));
      return;
    }
    lastAccepted = { token, client_id: introspection.client_id };
    const identity = { sub: introspection.sub, client_id: introspection.client_id, token: fingerprint(token) };
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    response.on('close', () => transport.close());
    await mcpServer(identity, request).connect(transport);
    await transport.handleRequest(request, response, body);
  } catch (error) {
    console.error(error);
    if (!response.headersSent) response.writeHead(500).end(String(error));
  }
});

await new Promise((resolve, reject) => {
  listener.once('error', reject);
  listener.listen(0, '127.0.0.1', resolve);
});
console.log(`ready http://127.0.0.1:${listener.address().port}/mcp`);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
