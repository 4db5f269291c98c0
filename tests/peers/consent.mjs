// A scripted browser for latchkey's OAuth tests: `BROWSER=tests/peers/browser.sh` makes latchkey
// run this with the authorization URL. It signs in and consents on oidc-provider's devInteractions
// pages over plain HTTP with a cookie jar, then requests the redirect URL, so that latchkey's real
// loopback listener receives the callback, and records the page latchkey answered with.
//
//     node tests/peers/consent.mjs <authorization-url>
//
// A URL of latchkey's gateway sign-in page (`http://127.0.0.1:<port>/sign-in/<id>`, the link of a
// URL elicitation) is opened first, as a browser would, and the authorization URL it redirects
// to is where the sign-in starts.
//
// CONSENT_MODE picks what the "user" and the "network" do (default `approve`):
//   approve        sign in and consent, deliver the redirect as it is
//   deny           sign in, then abort the consent: the redirect carries error=access_denied
//   tamper-state   deliver the redirect with another `state`
//   stray-first    first send the redirect address two requests that are not the redirect (no
//                  query; another `state`), as a local program or a web page might, then deliver
//                  the redirect as it is
//   drop-code      deliver the redirect without its `code`
//   wrong-iss      deliver the redirect with another `iss`
//   ignore         do nothing at all (latchkey times out)
//   paste          sign in and consent, then print the redirect URL on stdout instead of requesting
//                  it: the address a user copies from the browser for `oauth authorize --paste`
//   device         the person of RFC 8628 on another device: the URL is the verification URI with
//                  the user code in it; confirm the code, sign in and consent, until the "Sign-in
//                  Success" page (logged as `device success`)
//   device-deny    the same, but abort at the consent: latchkey's next poll gets access_denied
// CONSENT_LOGIN is the login name (default `alice`).
// CONSENT_LOG, a file: receives `authorization <parameter names>` (with login_hint's value),
// `stray <status>` for each stray request, `redirect <parameter names>`, `status <code>` and the page latchkey answered (or `error <text>`), then `end`, in one
// write. latchkey starts browsers with their
// output discarded, so the log is the only report.
import fs from 'node:fs';

const mode = process.env.CONSENT_MODE ?? 'approve';
const login = process.env.CONSENT_LOGIN ?? 'alice';
const report = [];
const log = (text) => report.push(text);

const jar = new Map();

function remember(response) {
  for (const cookie of response.headers.getSetCookie()) {
    const [pair, ...attributes] = cookie.split(';');
    const at = pair.indexOf('=');
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    const expired = attributes.some((attribute) => {
      const [key, setting] = attribute.trim().split('=');
      return (key.toLowerCase() === 'expires' && Date.parse(setting) < Date.now())
        || (key.toLowerCase() === 'max-age' && Number(setting) <= 0);
    });
    if (expired || value === '') jar.delete(name);
    else jar.set(name, value);
  }
}

async function request(url, options = {}) {
  const headers = { ...options.headers };
  if (jar.size) headers.cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
  const response = await fetch(url, { ...options, headers, redirect: 'manual' });
  remember(response);
  return response;
}

// Follow the authorization server's redirects and forms until it redirects off its own origin:
// that redirect is the one meant for latchkey.
async function authorize(start) {
  const origin = new URL(start).origin;
  log(`authorization ${[...new URL(start).searchParams].map(([name, value]) => (name === 'login_hint' ? `${name}=${value}` : name)).join(',')}`);
  let url = start;
  let response = await request(url);
  for (let step = 0; step < 20; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const next = new URL(response.headers.get('location'), url);
      if (next.origin !== origin) return next;
      url = next.href;
      response = await request(url);
      continue;
    }
    const page = await response.text();
    if (response.status !== 200) throw new Error(`HTTP ${response.status} at ${url}: ${page.slice(0, 500)}`);
    if (page.includes('<title>Sign-in Success</title>')) return null;
    // The user code pages (a form that submits itself, then the confirmation): post the form's
    // fields, as a browser and a person pressing "Continue" would.
    const deviceForm = !page.includes('name="prompt"') && /<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(page);
    const deviceError = /<p class="red">([^<]*)<\/p>/.exec(page)?.[1];
    if (deviceForm && deviceError) {
      // The user code page again, with why it came back (after an abort: "interrupted").
      log(`device page: ${deviceError}`);
      return null;
    }
    if (deviceForm) {
      const fields = {};
      for (const [input] of deviceForm[2].matchAll(/<input[^>]*>/g)) {
        const name = /name="([^"]+)"/.exec(input)?.[1];
        if (name) fields[name] = /value="([^"]*)"/.exec(input)?.[1] ?? '';
      }
      url = new URL(deviceForm[1], url).href;
      response = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      });
      continue;
    }
    const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1];
    if (!prompt) throw new Error(`no sign-in or consent form at ${url}: ${page.slice(0, 500)}`);
    if (prompt === 'consent' && (mode === 'deny' || mode === 'device-deny')) {
      url = `${url.replace(/\/$/, '')}/abort`;
      response = await request(url);
      continue;
    }
    const form = prompt === 'login' ? { prompt, login, password: 'any' } : { prompt };
    response = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }
  throw new Error(`no redirect back after 20 steps (last: ${url})`);
}

// The authorization URL behind latchkey's sign-in page, or `start` itself.
async function throughSignInPage(start) {
  if (!new URL(start).pathname.startsWith('/sign-in/')) return start;
  const response = await fetch(start, { redirect: 'manual' });
  log(`sign-in page ${response.status}`);
  const location = response.headers.get('location');
  if (!location) throw new Error(`the sign-in page answered ${response.status} without a redirect: ${await response.text()}`);
  return new URL(location, start).href;
}

// The redirect meant for latchkey, delivered (or printed) as the mode says.
async function deliver(redirect) {
  if (mode === 'tamper-state') redirect.searchParams.set('state', 'forged-state');
  if (mode === 'drop-code') redirect.searchParams.delete('code');
  if (mode === 'wrong-iss') redirect.searchParams.set('iss', 'http://127.0.0.1:1/evil');
  if (mode === 'stray-first') {
    for (const search of ['', `?code=stray-code&state=forged-state`]) {
      const stray = new URL(redirect);
      stray.search = search;
      const response = await fetch(stray);
      await response.text();
      log(`stray ${response.status}`);
    }
  }
  log(`redirect ${[...redirect.searchParams.keys()].join(',')}`);
  if (mode === 'paste') {
    console.log(redirect.href);
  } else {
    // latchkey answers only once the code exchange and storage are done.
    const response = await fetch(redirect);
    log(`status ${response.status}`);
    log(await response.text());
  }
}

try {
  if (mode !== 'ignore') {
    const redirect = await authorize(await throughSignInPage(process.argv[2]));
    if (!mode.startsWith('device')) {
      await deliver(redirect);
    } else if (redirect) {
      throw new Error(`the device sign-in redirected off the server, to ${redirect}`);
    } else {
      // It ends on the server's own page: there is no redirect to deliver.
      if (!report.some((line) => line.startsWith('device page: '))) log('device success');
    }
  }
} catch (error) {
  log(`error ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  if (process.env.CONSENT_LOG) fs.writeFileSync(process.env.CONSENT_LOG, `${report.join('\n')}\nend\n`);
}
