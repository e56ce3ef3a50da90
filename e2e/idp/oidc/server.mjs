// A real OpenID Connect provider for Vigil's tests: npm `oidc-provider`
// (OpenID-certified), configured from the environment.
//
//   PORT      port on 127.0.0.1 (0: any; the chosen one is printed)
//   KEY_DIR   where signing keys live (created on first use, RS256)
//   KEYS      comma-separated key names; the first signs (rotation: "b,a")
//   CLIENTS   JSON list of {client_id, client_secret, redirect_uris}
//   ACCOUNTS  JSON object: account id -> claims ({email, groups, ...})
//
// Interaction is non-interactive: GET /interaction/:uid?user=ID&amr=a,b
// logs ID in (with those authentication methods) and consents to what
// the client asked for. PKCE is required for every client.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const env = (k, d) => process.env[k] ?? d;
const keyDir = env('KEY_DIR', '.');
const keys = env('KEYS', 'a').split(',').map((name) => {
  const file = `${keyDir}/${name}.json`;
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: name, use: 'sig', alg: 'RS256' };
    fs.writeFileSync(file, JSON.stringify(jwk));
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
});
const accounts = JSON.parse(env('ACCOUNTS', '{}'));
const clients = JSON.parse(env('CLIENTS', '[]')).map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: c.client_secret ? 'client_secret_basic' : 'none',
  id_token_signed_response_alg: 'RS256',
  ...c,
}));

const server = http.createServer();
server.listen(Number(env('PORT', '0')), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'groups'],
    claims: {
      acr: null, amr: null, auth_time: null, iss: null, sid: null,
      // amr in every ID token, as Entra ID and Okta send it.
      openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email', 'email_verified'], groups: ['groups'],
    },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['vigil-test-idp'] },
    findAccount: async (_ctx, id) => (accounts[id]
      ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) }
      : undefined),
  });
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      const accountId = url.searchParams.get('user');
      if (!accounts[accountId]) {
        res.statusCode = 400;
        return res.end(`unknown test account ${accountId}`);
      }
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const missing = details.prompt.details.missingOIDCClaims;
      if (missing) grant.addOIDCClaims(missing);
      const grantId = await grant.save();
      const amr = (url.searchParams.get('amr') || 'pwd').split(',');
      await provider.interactionFinished(req, res, {
        login: { accountId, amr },
        consent: { grantId },
      }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
  });
  console.log(`listening ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
