// A real OpenID provider for the tests: the certified `oidc-provider` package on loopback.
//
//   node tests/oidc/provider.mjs <port> <accounts.json> <portal base URL>
//
// Accounts live in a JSON file the test rewrites ({"<login>": {"password", "email", "groups": [...]}}),
// read again at every sign-in and claims request, so a test can take a user out of a group. The login
// page is the provider's own (a password form); consent is given by the first-party client at once.
// PKCE is required for every client. Prints "ready <issuer>" on stdout when it listens.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { URLSearchParams } from 'node:url';

import Provider from 'oidc-provider';

const [port, accountsFile, portal] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const accounts = () => JSON.parse(readFileSync(accountsFile, 'utf8'));
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head>`
  + `<body><h1>${title}</h1>${body}</body></html>`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'portal',
    client_secret: 'portal-secret',
    redirect_uris: [`${portal}/accounts/sso/callback/`],
    post_logout_redirect_uris: [`${portal}/accounts/login/`],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  conformIdTokenClaims: false, // the ID token itself carries the groups claim
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">`
          + 'Yes, sign me out</button>');
      },
      postLogoutSuccessSource: async (ctx) => { ctx.body = page('Signed out', '<p>You are signed out.</p>'); },
    },
  },
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => {
    const account = accounts()[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub, preferred_username: sub, name: sub, email: account.email, groups: account.groups,
      }),
    };
  },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600 },
});

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') {
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (details.prompt.details.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
    if (details.prompt.details.missingOIDCClaims) grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  let error = '';
  if (req.method === 'POST') {
    const form = await readForm(req);
    const account = accounts()[form.get('login')];
    if (account && account.password === form.get('password')) {
      await provider.interactionFinished(req, res, { login: { accountId: form.get('login') } },
        { mergeWithLastSubmission: false });
      return;
    }
    error = '<p role="alert">Wrong login or password.</p>';
  }
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(page('Sign in to the test provider', `${error}<form method="post" action="/interaction/${escape(uid)}">`
    + '<label>Login <input name="login" autocomplete="username"></label>'
    + '<label>Password <input name="password" type="password"></label>'
    + '<button type="submit">Sign in</button></form>'));
}

const callback = provider.callback();
createServer((req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)$/);
  if (!match) { callback(req, res); return; }
  interaction(req, res, match[1]).catch((err) => {
    res.statusCode = 500;
    res.end(String(err));
  });
}).listen(Number(port), '127.0.0.1', () => { process.stdout.write(`ready ${issuer}\n`); });
