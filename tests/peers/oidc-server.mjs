// A real authorization server for latchkey's end-to-end OAuth tests: npm `oidc-provider` on
// 127.0.0.1, configured the way the tests need it.
//
//     node tests/peers/oidc-server.mjs [port]        (or OIDC_PORT; 0 or unset: an ephemeral port)
//
// Prints one line, `ready <issuer>`, once it accepts connections, then serves until killed.
//
// - Pre-registered clients, all `application_type: native` with the port-agnostic redirect
//   `http://127.0.0.1/callback` (RFC 8252 §7.3: oidc-provider ignores the port of a native
//   client's loopback redirect, so latchkey's ephemeral callback port works):
//     `basic-client` / `basic-secret` (client_secret_basic), `post-client` / `post-secret`
//     (client_secret_post), `public-client` (none).
// - The device authorization grant (RFC 8628) at /device/auth, the person's pages at /device:
//   `device-client` (public) and `basic-client` may use it. Device codes live
//   OIDC_DEVICE_CODE_TTL seconds (default 600); oidc-provider sends no `interval`, so clients
//   poll every 5 seconds (RFC 8628 §3.2's default).
// - private_key_jwt (RFC 7523): `jwt-ec-client` (P-256) and `jwt-rsa-client` (RSA 2048), whose key
//   pairs are made at start; with OIDC_CLIENT_KEYS_DIR, their private keys are written there as
//   PKCS#8 PEM (`ec.pem`, `rsa.pem`) for the test to store in latchkey.
// - The client credentials grant (RFC 6749 §4.4): `service-client` / `service-secret`
//   (client_secret_basic) with the scope `mcp:tools`; its tokens live OIDC_ACCESS_TOKEN_TTL too.
// - Open Dynamic Client Registration (RFC 7591) at /reg; PKCE S256 required for every client;
//   revocation (RFC 7009) and introspection (RFC 7662); `iss` in redirects (RFC 9207).
// - Refresh tokens for every client allowed the refresh_token grant (oidc-provider's default
//   wants `offline_access` and a consent prompt). Confidential clients keep their refresh token on
//   refresh; public clients get a rotated one (oidc-provider's default rotation rule).
// - Access tokens live OIDC_ACCESS_TOKEN_TTL seconds (default 3600), for expiry and refresh tests.
// - RFC 8707 resource indicators: any resource under this server's origin is a resource server
//   with the scope `mcp:tools` and opaque tokens (so introspection sees them). With
//   OIDC_LOOPBACK_RESOURCES=1, so is any resource on 127.0.0.1 (an MCP server of a test's own
//   that checks the tokens by introspection).
// - An MCP-style protected resource at /mcp (401 with a `WWW-Authenticate` challenge) and its
//   RFC 9728 metadata, so latchkey's discovery finds this server and registers dynamically.
// - `/.well-known/oauth-authorization-server` answers with the OpenID Connect discovery document
//   (oidc-provider serves only the latter; RFC 8414 clients ask for the former).
// - devInteractions login and consent pages: any login name, any password (tests/peers/consent.mjs
//   drives them over HTTP).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OIDC_PORT ?? 0);
const accessTokenTtl = Number(process.env.OIDC_ACCESS_TOKEN_TTL ?? 3600);
const deviceCodeTtl = Number(process.env.OIDC_DEVICE_CODE_TTL ?? 600);
const deviceGrant = 'urn:ietf:params:oauth:grant-type:device_code';

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// The private_key_jwt clients' keys: the public halves are the clients' `jwks`.
const clientKeys = {
  ec: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  rsa: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
};
if (process.env.OIDC_CLIENT_KEYS_DIR) {
  for (const [name, { privateKey }] of Object.entries(clientKeys)) {
    fs.writeFileSync(path.join(process.env.OIDC_CLIENT_KEYS_DIR, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  }
}
const jwks = (name) => ({ keys: [clientKeys[name].publicKey.export({ format: 'jwk' })] });

const native = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

const provider = new Provider(issuer, {
  clients: [
    {
      ...native,
      client_id: 'basic-client',
      client_secret: 'basic-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [...native.grant_types, deviceGrant],
    },
    { ...native, client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post' },
    { ...native, client_id: 'public-client', token_endpoint_auth_method: 'none' },
    { ...native, client_id: 'jwt-ec-client', token_endpoint_auth_method: 'private_key_jwt', jwks: jwks('ec') },
    { ...native, client_id: 'jwt-rsa-client', token_endpoint_auth_method: 'private_key_jwt', jwks: jwks('rsa') },
    {
      application_type: 'native',
      client_id: 'device-client',
      token_endpoint_auth_method: 'none',
      grant_types: [deviceGrant, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'service-client',
      client_secret: 'service-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp:tools',
    },
  ],
  scopes: ['openid', 'offline_access', 'profile', 'mcp:tools'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Refreshes without `resource` keep the audience of the grant.
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const loopback = process.env.OIDC_LOOPBACK_RESOURCES === '1' && new URL(resource).hostname === '127.0.0.1';
        if (new URL(resource).origin !== issuer && !loopback) {
          throw new Provider.errors.InvalidTarget(`${resource} is not a resource of this server`);
        }
        return { scope: 'mcp:tools', audience: resource, accessTokenFormat: 'opaque', accessTokenTTL: accessTokenTtl };
      },
    },
  },
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 120,
    ClientCredentials: accessTokenTtl,
    DeviceCode: deviceCodeTtl,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 3600,
  },
  // Ephemeral signing keys and cookie keys are fine for a server that lives for one test.
  cookies: { keys: ['latchkey-test-cookie-key'] },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/.well-known/oauth-authorization-server') {
    ctx.path = '/.well-known/openid-configuration';
    return next();
  }
  if (ctx.path === '/.well-known/oauth-protected-resource/mcp') {
    ctx.body = { resource: `${issuer}/mcp`, authorization_servers: [issuer], scopes_supported: ['mcp:tools'] };
    return undefined;
  }
  if (ctx.path === '/mcp') {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', `Bearer resource_metadata="${issuer}/.well-known/oauth-protected-resource/mcp"`);
    ctx.body = { error: 'unauthorized' };
    return undefined;
  }
  return next();
});

// The tests read the logs only when something fails.
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.on('grant.error', (ctx, error) => console.error('grant.error', error.message, error.error_description ?? ''));

server.on('request', provider.callback());
console.log(`ready ${issuer}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
