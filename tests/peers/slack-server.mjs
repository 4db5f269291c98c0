// An emulator of Slack's Web API methods that latchkey's revocation talks to, built from Slack's
// documentation, for the revocation tests (tests/tests/revocation.rs):
//
//     SLACK_TOKENS='{"xoxb-…": "access", "xoxe-1-…": "refresh"}' node tests/peers/slack-server.mjs
//
// - `auth.revoke` (https://docs.slack.dev/reference/methods/auth.revoke) revokes the token the
//   call is authenticated with: `Authorization: Bearer <token>`, or a `token` argument in the form
//   or the query. It answers HTTP 200 with `{"ok":true,"revoked":true}`; `revoked: false` with the
//   `test` argument; `{"ok":false,"error":"not_authed"}` without a token and
//   `{"ok":false,"error":"invalid_auth"}` for a token that does not authenticate (an unknown or
//   revoked one, or a refresh token, which authenticates no Web API call).
// - `auth.test` (https://docs.slack.dev/reference/methods/auth.test) says whether a token still
//   works, the same way.
// - `GET /_requests` lists what arrived (method, path, headers, body), for the test to check.
//
// Prints `ready http://127.0.0.1:<port>` once it listens.
import http from 'node:http';

const tokens = new Map(Object.entries(JSON.parse(process.env.SLACK_TOKENS ?? '{}')));
const revoked = new Set();
const requests = [];

const answer = (response, body) => {
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
};

// The token a Web API call is authenticated with: the bearer header wins over arguments.
const callerToken = (request, args) => {
  const header = request.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return header.slice('Bearer '.length);
  return args.get('token') ?? null;
};

// Whether `token` authenticates a Web API call: a known access token not revoked.
const authenticates = (token) => tokens.get(token) === 'access' && !revoked.has(token);

const server = http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => (body += chunk));
  request.on('end', () => {
    const url = new URL(request.url, 'http://127.0.0.1');
    if (request.method === 'GET' && url.pathname === '/_requests') return answer(response, requests);
    requests.push({ method: request.method, path: url.pathname + url.search, headers: request.headers, body });
    const type = request.headers['content-type'] ?? '';
    const args = new URLSearchParams(url.search);
    if (type.startsWith('application/x-www-form-urlencoded')) {
      for (const [name, value] of new URLSearchParams(body)) args.set(name, value);
    }
    const token = callerToken(request, args);
    switch (url.pathname) {
      case '/api/auth.revoke':
      case '/api/auth.test': {
        if (token === null) return answer(response, { ok: false, error: 'not_authed' });
        if (!authenticates(token)) return answer(response, { ok: false, error: 'invalid_auth' });
        if (url.pathname === '/api/auth.test') return answer(response, { ok: true, team_id: 'T0123ABCD' });
        const test = ['1', 'true'].includes(args.get('test'));
        if (!test) revoked.add(token);
        return answer(response, { ok: true, revoked: !test });
      }
      default:
        return answer(response, { ok: false, error: 'unknown_method' });
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`ready http://127.0.0.1:${server.address().port}`);
});
