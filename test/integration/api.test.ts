import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ensureCerts } from '../../lab/kube-sim/certs.js';
import { buildApiServer } from '../../src/api/server.js';
import type { AllocationRow, ApiState } from '../../src/api/state.js';

const TOKEN = 'test-token-0123456789abcdef';
const rows: AllocationRow[] = [
  { address: '192.0.2.1', family: 4, pool: 'default', namespace: 'default', name: 'whoami', uid: 'u1', sharingKey: null, ports: ['TCP/80'], allocatedAt: '2026-11-22T08:00:00.000Z', orphaned: false },
  { address: '2001:db8::1', family: 6, pool: 'v6', namespace: 'edge', name: 'web', uid: 'u2', sharingKey: 'k', ports: ['TCP/443'], allocatedAt: '2026-11-22T08:00:01.000Z', orphaned: false },
];

/** A fixed, in-memory daemon view: these tests are about the HTTP surface (auth, validation, shapes). */
function fixture(over: Partial<ApiState> = {}): ApiState & { reconciles: number } {
  const s = {
    reconciles: 0,
    pools: () => [{ name: 'default', size: '257', used: 1, free: '256', orphaned: 0, autoAssign: true, addresses: ['192.0.2.0/24'] }],
    allocations: (f: { namespace?: string; pool?: string; address?: string; offset: number; limit: number }) => {
      const items = rows.filter((r) => (!f.namespace || r.namespace === f.namespace) && (!f.pool || r.pool === f.pool) && (!f.address || r.address === f.address));
      return { items: items.slice(f.offset, f.offset + f.limit), total: items.length, offset: f.offset, limit: f.limit };
    },
    allocation: (ip: string) => rows.filter((r) => r.address === ip),
    service: async (ns: string, name: string) => (ns === 'default' && name === 'whoami' ? { namespace: ns, name, allocations: [rows[0]!], virtualServices: [], problems: [] } : undefined),
    virtualServices: async () => [],
    vrrp: () => [{ name: 'a', state: 'MASTER', since: '2026-11-22T08:00:00.000Z', transitions: 1, vips: ['192.0.2.1'] }],
    events: (p: { before?: number; limit: number }) => {
      const all = [3, 2, 1].map((id) => ({ id, at: '2026-11-22T08:00:00.000Z', action: 'allocate', reason: 'NewService', service: 'default/whoami', address: '192.0.2.1', pool: 'default', host: 'lb1', term: 1 }));
      const items = all.filter((r) => p.before === undefined || r.id < p.before).slice(0, p.limit);
      return { items, next: items.length === p.limit ? items[items.length - 1]!.id : null };
    },
    health: () => ({ ready: true, checks: { ledger: true, kernel: true, reconciledOnce: true, kubernetes: false }, messages: ['Kubernetes API unreachable: serving the last programmed state'] }),
    status: () => ({ host: 'lb1', version: '0.1.0', startedAt: '2026-11-22T08:00:00.000Z', allocator: { leader: true, holder: 'lb1', term: 2 }, services: { allocated: 2, withProblems: 0 }, lastReconcile: null }),
    reconcile: async () => {
      s.reconciles++;
      return { operations: 3, errors: 0, durationMs: 1 };
    },
    reloadConfig: async () => ({ ok: false as const, problems: ['pools[0].name: is required'] }),
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'ipvs_lb_up 1\n' }),
    ...over,
  };
  return s;
}

async function serve(host: string, state: ApiState): Promise<{ app: FastifyInstance; url: string }> {
  // The listen host decides the read policy; the socket itself is always on loopback in tests.
  const app = await buildApiServer({ state, token: TOKEN, listen: { host, port: 0 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  return { app, url: `http://127.0.0.1:${addr.port}` };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Response | Promise<Response>): Promise<any> => (await r).json();
const auth = { authorization: `Bearer ${TOKEN}` };

describe('REST API on loopback', () => {
  let url = '';
  let app: FastifyInstance;
  const state = fixture();
  before(async () => ({ app, url } = await serve('127.0.0.1', state)));
  after(async () => app.close());

  it('serves reads without a token and reports health and readiness', async () => {
    assert.deepEqual(await json(fetch(`${url}/healthz`)), { status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual((await json(ready)).checks.kubernetes, false);
    const pools = await json(fetch(`${url}/api/v1/pools`));
    assert.equal(pools.items[0].size, '257');
    assert.equal(await (await fetch(`${url}/metrics`)).text(), 'ipvs_lb_up 1\n');
  });

  it('always requires the token for mutating endpoints, with one error shape', async () => {
    const none = await fetch(`${url}/api/v1/reconcile`, { method: 'POST' });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="ipvs-lb"');
    assert.deepEqual(await json(none), { error: { code: 'Unauthorized', message: 'a valid bearer token is required (Authorization: Bearer TOKEN)' } });
    const wrong = await fetch(`${url}/api/v1/reconcile`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}x` } });
    assert.equal(wrong.status, 401);
    assert.equal(state.reconciles, 0);
    const ok = await fetch(`${url}/api/v1/reconcile`, { method: 'POST', headers: auth });
    assert.equal(ok.status, 200);
    assert.deepEqual(await json(ok), { operations: 3, errors: 0, durationMs: 1 });
    assert.equal(state.reconciles, 1);
  });

  it('rejects unknown fields and bad values with 400 naming them', async () => {
    const body = await fetch(`${url}/api/v1/reconcile`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ force: true }) });
    assert.equal(body.status, 400);
    assert.deepEqual(await json(body), { error: { code: 'BadRequest', message: 'body: unknown field "force": this endpoint takes none' } });
    const q = await fetch(`${url}/api/v1/allocations?bogus=1`);
    assert.equal(q.status, 400);
    assert.match((await json(q)).error.message, /unknown field "bogus"/);
    const lim = await fetch(`${url}/api/v1/allocations?limit=5000`);
    assert.equal(lim.status, 400);
    assert.match((await json(lim)).error.message, /querystring\.limit: must be <= 1000/);
    const ip = await fetch(`${url}/api/v1/allocations?address=not-an-ip`);
    assert.equal(ip.status, 400);
    assert.deepEqual(await json(ip), { error: { code: 'BadRequest', message: 'querystring.address: must be an IP address (got "not-an-ip")' } });
    const name = await fetch(`${url}/api/v1/services/Default/whoami`);
    assert.equal(name.status, 400);
    assert.match((await json(name)).error.message, /params\.namespace: must match pattern/);
  });

  it('filters and paginates allocations; canonicalizes addresses; 404s unknown ones', async () => {
    const v6 = await json(fetch(`${url}/api/v1/allocations?address=2001:DB8:0::1`));
    assert.deepEqual(v6.items.map((r: AllocationRow) => r.name), ['web']);
    const page = await json(fetch(`${url}/api/v1/allocations?limit=1&offset=1`));
    assert.deepEqual([page.total, page.items.length, page.items[0].name], [2, 1, 'web']);
    assert.equal((await fetch(`${url}/api/v1/allocations/192.0.2.1`)).status, 200);
    const missing = await fetch(`${url}/api/v1/allocations/192.0.2.99`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await json(missing), { error: { code: 'NotFound', message: 'address 192.0.2.99 is not allocated' } });
    assert.equal((await fetch(`${url}/api/v1/services/default/nope`)).status, 404);
    assert.equal((await fetch(`${url}/api/v1/services/default/whoami`)).status, 200);
  });

  it('pages the audit log with a cursor', async () => {
    const first = await json(fetch(`${url}/api/v1/events?limit=2`));
    assert.deepEqual([first.items.map((r: { id: number }) => r.id), first.next], [[3, 2], 2]);
    const second = await json(fetch(`${url}/api/v1/events?limit=2&before=${first.next}`));
    assert.deepEqual([second.items.map((r: { id: number }) => r.id), second.next], [[1], null]);
    assert.equal((await fetch(`${url}/api/v1/events?before=0`)).status, 400);
  });

  it('refuses an invalid config reload whole and says why', async () => {
    const r = await fetch(`${url}/api/v1/config/reload`, { method: 'POST', headers: auth });
    assert.equal(r.status, 400);
    const j = await json(r);
    assert.equal(j.error.code, 'InvalidConfig');
    assert.deepEqual(j.problems, ['pools[0].name: is required']);
  });

  it('limits body size and answers unknown routes in the error shape', async () => {
    const big = await fetch(`${url}/api/v1/reconcile`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ x: 'y'.repeat(100_000) }) });
    assert.equal(big.status, 413);
    assert.equal((await json(big)).error.code, 'PayloadTooLarge');
    const nf = await fetch(`${url}/api/v1/nothing`);
    assert.equal(nf.status, 404);
    assert.deepEqual(await json(nf), { error: { code: 'NotFound', message: 'no route GET /api/v1/nothing' } });
  });

  it('publishes an OpenAPI document of every route', async () => {
    const doc = await json(fetch(`${url}/api/v1/openapi.json`));
    assert.equal(doc.openapi, '3.0.3');
    for (const p of ['/api/v1/status', '/api/v1/pools', '/api/v1/allocations', '/api/v1/allocations/{ip}', '/api/v1/services/{namespace}/{name}', '/api/v1/virtual-services', '/api/v1/vrrp', '/api/v1/events', '/api/v1/reconcile', '/api/v1/config/reload', '/healthz', '/readyz', '/metrics']) {
      assert.ok(doc.paths[p], `missing ${p}`);
    }
    assert.deepEqual(doc.paths['/api/v1/reconcile'].post.security, [{ bearer: [] }]);
  });
});

/** Every route with a request that succeeds on the fixture; `open` routes never need the token. */
const endpoints: Array<{ method: 'GET' | 'POST'; path: string; open?: boolean; mutating?: boolean }> = [
  { method: 'GET', path: '/healthz', open: true },
  { method: 'GET', path: '/readyz', open: true },
  { method: 'GET', path: '/api/v1/openapi.json', open: true },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/api/v1/status' },
  { method: 'GET', path: '/api/v1/pools' },
  { method: 'GET', path: '/api/v1/allocations' },
  { method: 'GET', path: '/api/v1/allocations/192.0.2.1' },
  { method: 'GET', path: '/api/v1/services/default/whoami' },
  { method: 'GET', path: '/api/v1/virtual-services' },
  { method: 'GET', path: '/api/v1/vrrp' },
  { method: 'GET', path: '/api/v1/events' },
  { method: 'POST', path: '/api/v1/reconcile', mutating: true },
  { method: 'POST', path: '/api/v1/config/reload', mutating: true },
];

describe('REST API: every endpoint, with and without the token', () => {
  const servers: Record<string, { app: FastifyInstance; url: string }> = {};
  const okReload = fixture({ reloadConfig: async () => ({ ok: true as const, summary: 'pools: default' }) });
  before(async () => {
    servers.loopback = await serve('127.0.0.1', okReload);
    servers.remote = await serve('192.0.2.10', okReload);
  });
  after(async () => Promise.all(Object.values(servers).map((s) => s.app.close())));

  for (const e of endpoints) {
    it(`${e.method} ${e.path}`, async () => {
      const call = (where: string, headers: Record<string, string> = {}, query = '') => fetch(`${servers[where]!.url}${e.path}${query}`, { method: e.method, headers });
      const withToken = await call('remote', auth);
      assert.equal(withToken.status, 200, `with token: ${await withToken.text()}`);
      for (const [label, headers] of [['no token', {}], ['wrong token', { authorization: `Bearer ${TOKEN}x` }], ['not a bearer', { authorization: `Basic ${TOKEN}` }]] as const) {
        const r = await call('remote', headers);
        if (e.open) assert.equal(r.status, 200, `${label} off loopback`);
        else {
          assert.equal(r.status, 401, `${label} off loopback`);
          assert.equal((await json(r)).error.code, 'Unauthorized');
        }
        const local = await call('loopback', headers);
        assert.equal(local.status, e.mutating ? 401 : 200, `${label} on loopback`);
      }
      // Unknown query parameters are refused by name, and only after the token check.
      const unknown = await call('remote', auth, '?verbose=1');
      assert.equal(unknown.status, 400);
      assert.deepEqual(await json(unknown), { error: { code: 'BadRequest', message: 'querystring: must NOT have additional properties (got unknown field "verbose")' } });
      if (!e.open) assert.equal((await call('remote', {}, '?verbose=1')).status, 401);
    });
  }

  it('refuses bad parameters of every parameterized endpoint with 400 naming the field and value', async () => {
    const url = servers.remote!.url;
    const cases: Array<[string, RegExp]> = [
      ['/api/v1/allocations?namespace=Bad_NS', /^querystring\.namespace: must match pattern/],
      ['/api/v1/allocations?pool=-x', /^querystring\.pool: must match pattern/],
      ['/api/v1/allocations?offset=-1', /^querystring\.offset: must be >= 0$/],
      ['/api/v1/allocations?limit=0', /^querystring\.limit: must be >= 1$/],
      ['/api/v1/allocations?limit=ten', /^querystring\.limit: must be integer$/],
      ['/api/v1/allocations?address=192.0.2.300', /^querystring\.address: must be an IP address \(got "192\.0\.2\.300"\)$/],
      ['/api/v1/allocations/not-an-ip', /^params\.ip: must be an IP address \(got "not-an-ip"\)$/],
      ['/api/v1/services/default/Who_Am_I', /^params\.name: must match pattern/],
      ['/api/v1/events?before=x', /^querystring\.before: must be integer$/],
      ['/api/v1/events?limit=1001', /^querystring\.limit: must be <= 1000$/],
      ['/api/v1/events?offset=3', /unknown field "offset"/],
    ];
    for (const [path, message] of cases) {
      const r = await fetch(`${url}${path}`, { headers: auth });
      assert.equal(r.status, 400, path);
      const body = await json(r);
      assert.equal(body.error.code, 'BadRequest', path);
      assert.match(body.error.message, message, path);
    }
    // Several problems at once are all reported.
    const many = await json(fetch(`${url}/api/v1/allocations?limit=0&offset=-1&extra=1`, { headers: auth }));
    for (const part of ['querystring.limit', 'querystring.offset', 'unknown field "extra"']) assert.ok(many.error.message.includes(part), many.error.message);
  });

  it('mutating endpoints refuse bodies that are not empty objects, and wrong content types', async () => {
    const url = servers.remote!.url;
    const post = (body: string, type = 'application/json') => fetch(`${url}/api/v1/config/reload`, { method: 'POST', headers: { ...auth, 'content-type': type }, body });
    const cases: Array<[string, string, number, RegExp]> = [
      ['{}', 'application/json', 200, /summary/],
      ['{"dryRun":true}', 'application/json', 400, /^body: unknown field "dryRun": this endpoint takes none$/],
      ['[]', 'application/json', 400, /^body: must be empty or an empty JSON object \(got \[\]\)$/],
      ['"x"', 'application/json', 400, /^body: must be empty or an empty JSON object/],
      ['{"a":', 'application/json', 400, /JSON/],
      ['a=1', 'application/x-www-form-urlencoded', 415, /Unsupported Media Type/i],
    ];
    for (const [body, type, status, message] of cases) {
      const r = await post(body, type);
      assert.equal(r.status, status, `${type} ${body}`);
      const j = await json(r);
      assert.match(status === 200 ? JSON.stringify(j) : j.error.message, message, `${type} ${body}`);
    }
  });
});

describe('REST API off loopback', () => {
  let url = '';
  let app: FastifyInstance;
  before(async () => ({ app, url } = await serve('192.0.2.10', fixture({ health: () => ({ ready: false, checks: { ledger: true, kernel: false, reconciledOnce: false, kubernetes: true }, messages: ['kernel: IPVS netlink family not found'] }) }))));
  after(async () => app.close());

  it('requires the token for reads and metrics too, but not for health probes', async () => {
    assert.equal((await fetch(`${url}/api/v1/pools`)).status, 401);
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    assert.equal((await fetch(`${url}/api/v1/pools`, { headers: auth })).status, 200);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual((await json(ready)).messages, ['kernel: IPVS netlink family not found']);
  });
});

describe('REST API over TLS', () => {
  let app: FastifyInstance;
  let port = 0;
  let ca = '';
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-api-tls-'));
  before(async () => {
    const certs = await ensureCerts(dir);
    ca = certs.ca;
    writeFileSync(join(dir, 'tls.crt'), certs.cert);
    writeFileSync(join(dir, 'tls.key'), certs.key);
    app = await buildApiServer({ state: fixture(), token: TOKEN, listen: { host: '192.0.2.10', port: 0 }, tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string> = {}, trust = true) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, headers, ...(trust ? { ca } : {}) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

  it('serves HTTPS with the configured certificate, still requiring the token', async () => {
    assert.equal((await get('/api/v1/pools', auth)).status, 200);
    assert.equal((await get('/api/v1/pools')).status, 401);
    await assert.rejects(get('/api/v1/pools', auth, false), /self[- ]signed|unable to verify|certificate/i);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'plain HTTP is not served');
  });
});
