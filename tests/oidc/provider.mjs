// A real OpenID provider (oidc-provider) on 127.0.0.1 for keyward's
// end-to-end tests. Started by the Rust tests; never used in production.
//
// - Listens on 127.0.0.1 on a free port and prints one JSON line on stdout:
//   {"issuer": "...", "kids": [...]}
// - Signs JWT access tokens (RFC 9068, typ at+jwt) for the resource
//   https://api.example/<ALG> with ALG in RS256, ES256, EdDSA; the audience
//   is https://api.example. Client credentials: keyward-test / keyward-secret.
// - Keys are generated here at start, fresh every run.
// - Reads commands on stdin, one per line, answering one JSON line each:
//   "rotate": replace every signing key (new kids), keep the issuer and port;
//   "refresh-token": create a grant for user "user-1" and client keyward-web
//   (as a completed authorization-code login would) and return its refresh
//   token. Refresh tokens rotate on every use, and presenting a used one
//   revokes the grant with all its tokens (oidc-provider's reuse detection).
// - A second client, keyward-web / keyward-web-secret, may use the
//   refresh_token grant.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import Provider from 'oidc-provider';

const AUDIENCE = 'https://api.example';

// stdout carries only the protocol lines; the library's notices go to stderr.
const reply = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
console.log = console.info = console.warn = (...args) => process.stderr.write(`${args.join(' ')}\n`);
let generation = 0;

function signingKeys() {
  generation += 1;
  const make = (type, options, alg) => {
    const { privateKey } = generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg.toLowerCase()}-${generation}-${randomUUID().slice(0, 8)}` };
  };
  return [
    make('rsa', { modulusLength: 2048 }, 'RS256'),
    make('ec', { namedCurve: 'P-256' }, 'ES256'),
    make('ed25519', {}, 'EdDSA'),
  ];
}

function provider(issuer, keys) {
  const p = new Provider(issuer, {
    clients: [{
      client_id: 'keyward-test',
      client_secret: 'keyward-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    }, {
      client_id: 'keyward-web',
      client_secret: 'keyward-web-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: ['http://127.0.0.1/callback'],
      response_types: ['code'],
    }],
    rotateRefreshToken: true,
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, email: `${id}@example.com` }),
    }),
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => `${AUDIENCE}/RS256`,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: 'read write',
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: new URL(resource).pathname.slice(1) } },
        }),
      },
    },
    extraTokenClaims: () => ({
      email: 'service@example.com',
      email_verified: true,
      orgs: [{ id: 'org_1', slug: 'acme', name: 'Acme Inc', role: 'admin' }],
    }),
  });
  p.proxy = false;
  return p;
}

// What a completed authorization-code login with offline_access leaves
// behind: a grant and a refresh token bound to it.
async function mintRefreshToken(p) {
  const client = await p.Client.find('keyward-web');
  const grant = new p.Grant({ accountId: 'user-1', clientId: client.clientId });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope(`${AUDIENCE}/ES256`, 'read');
  const grantId = await grant.save();
  const token = new p.RefreshToken({
    accountId: 'user-1',
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'openid offline_access',
    resource: `${AUDIENCE}/ES256`,
    rotations: 0,
    iiat: Math.floor(Date.now() / 1000),
  });
  return token.save();
}

let current;
const server = createServer((req, res) => current.callback()(req, res));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  let keys = signingKeys();
  current = provider(issuer, keys);
  const kids = () => keys.map((k) => k.kid);
  reply({ issuer, kids: kids() });
  createInterface({ input: process.stdin }).on('line', async (line) => {
    if (line.trim() === 'refresh-token') {
      try {
        reply({ refresh_token: await mintRefreshToken(current) });
      } catch (e) {
        reply({ error: String(e && e.stack || e) });
      }
    } else if (line.trim() === 'rotate') {
      keys = signingKeys();
      current = provider(issuer, keys);
      reply({ rotated: true, kids: kids() });
    } else {
      reply({ error: `unknown command ${line}` });
    }
  }).on('close', () => process.exit(0));
});
