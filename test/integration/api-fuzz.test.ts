// Bad input to the REST API of a real daemon (control plane only, on the API simulator), over real HTTP:
// random methods, paths, query strings, headers and bodies, and raw bytes that are not HTTP at all. Every
// request gets an answer in time, never a 5xx, always the one error shape with a message; the daemon lives
// on and its state is what it was. Then random config files through POST /api/v1/config/reload: each is
// applied whole or refused whole.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { KubeSim, sampleCluster } from '../../lab/kube-sim/index.js';
import { configPaths, junkValue, valueAt, withValue } from '../support/config-mutations.js';
import { eventually, startDaemon, type DaemonHandle } from '../support/daemon.js';
import { fuzzParams } from '../support/fuzz.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function send(port: number, o: { method: string; path: string; headers: Record<string, string>; body?: Buffer }): Promise<Answer> {
  // Node's client sends a DELETE or OPTIONS body without framing unless told its length.
  const headers = o.body ? { ...o.headers, 'content-length': String(o.body.length) } : o.headers;
  return new Promise((resolve, reject) => {
    // A fresh connection each time: after a 413 the server closes, and a reused socket would hang up on the
    // next request through no fault of the server.
    const req = request({ host: '127.0.0.1', port, method: o.method, path: o.path, headers, timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within 10 s to ${o.method} ${o.path}`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

const segment = fc.oneof(
  fc.constantFrom('api', 'v1', 'pools', 'allocations', 'services', 'default', 'web', '192.0.2.1', '2001:db8::1', '2001%3Adb8%3A%3A1', 'virtual-services', 'vrrp', 'events', 'status',
    'reconcile', 'config', 'reload', 'openapi.json', 'metrics', 'healthz', 'readyz', '..', '.', '', '%2e%2e', '%zz', '%00', '%ff', '%C3%A4', '%', 'a'.repeat(300), 'Default', '-x', '*'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const path = fc.oneof(
  fc.array(segment, { maxLength: 5 }).map((s) => `/api/v1/${s.join('/')}`),
  fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`),
  fc.constantFrom('/api/v1/pools', '/api/v1/allocations', '/api/v1/events', '/api/v1/services/default/web', '/api/v1/allocations/192.0.2.1', '/metrics', '/readyz', '/api/v1/config/reload', '/api/v1/reconcile'),
);
const queryValue = fc.oneof(fc.constantFrom('', '-1', '0', '1', '1000', '1001', '1e3', '0x10', '1.5', 'true', 'null', '192.0.2.1', '2001:DB8::1', 'default', 'a'.repeat(200), '%zz', '%00'), fc.string({ maxLength: 10 }).map(encodeURIComponent));
const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom('namespace', 'pool', 'address', 'offset', 'limit', 'before', 'verbose', ''), fc.string({ maxLength: 6 }).map(encodeURIComponent)), queryValue), { maxLength: 4 })
  .map((kv) => (kv.length ? `?${kv.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((s) => s.trim());

describe('REST API fuzzing against a real daemon', { timeout: 300_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let daemon: DaemonHandle;
  let configPath: string;
  let original: Record<string, unknown>;
  const get = async <T>(p: string): Promise<T> => (await daemon.api<T>(p)).body;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-api-fuzz-'));
    sim = await KubeSim.start({});
    const kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    sampleCluster(sim);
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
    daemon = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig, config: { pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }, { name: 'spare', addresses: ['198.51.100.64/28'], autoAssign: false }] } });
    configPath = join(dir, 'lb1', 'config.yaml');
    original = parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } });
    await eventually('allocation', async () => ((await get<{ total: number }>('/api/v1/allocations')).total === 1 ? true : undefined));
  });
  after(async () => {
    const code = await daemon?.stop('SIGTERM');
    if (code !== 0 && daemon) process.stderr.write(daemon.log().slice(-4000));
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('random requests: an answer in time, no 5xx, one error shape with a message', async () => {
    const before = await get<unknown>('/api/v1/allocations');
    const token = daemon.token();
    const req = fc.record({
      method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
      path, query,
      auth: fc.constantFrom('none', 'token', 'token', 'wrong', 'basic', 'bare', 'spaced'),
      type: fc.option(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', '', 'garbage'), { nil: undefined }),
      extra: fc.dictionary(fc.stringMatching(/^x-[a-z]{1,10}$/), headerValue, { maxKeys: 3 }),
      accept: fc.option(fc.constantFrom('*/*', 'application/json', 'text/html', 'application/openmetrics-text; version=1.0.0', ''), { nil: undefined }),
      body: fc.option(fc.oneof(
        fc.json({ maxDepth: 3 }).map((j) => Buffer.from(j)),
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.constantFrom(Buffer.from('{}'), Buffer.from('{'), Buffer.from('null'), Buffer.from('[]'), Buffer.from('{"a":1}'), Buffer.from('x'.repeat(70_000)), Buffer.from('{"__proto__":{"x":1}}')),
      ), { nil: undefined }),
    });
    await fc.assert(fc.asyncProperty(req, async (r) => {
      const headers: Record<string, string> = { ...r.extra };
      if (r.auth === 'token') headers.authorization = `Bearer ${token}`;
      if (r.auth === 'wrong') headers.authorization = `Bearer ${token.slice(1)}x`;
      if (r.auth === 'basic') headers.authorization = `Basic ${Buffer.from(`a:${token}`).toString('base64')}`;
      if (r.auth === 'bare') headers.authorization = 'Bearer';
      if (r.auth === 'spaced') headers.authorization = `Bearer  ${token} extra`;
      if (r.type !== undefined) headers['content-type'] = r.type;
      if (r.accept !== undefined) headers.accept = r.accept;
      const a = await send(daemon.port, { method: r.method, path: `${r.path}${r.query}`, headers, body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body });
      assert.ok(a.status >= 200 && a.status < 500, `${r.method} ${r.path}${r.query}: ${a.status} ${a.body.slice(0, 300)}`);
      if (a.status >= 400 && r.method !== 'HEAD') {
        let e: { error?: { code?: unknown; message?: unknown } };
        try {
          e = JSON.parse(a.body) as typeof e;
        } catch {
          assert.fail(`${r.method} ${r.path}${r.query}: ${a.status} with a body that is not JSON: ${a.body.slice(0, 200)}`);
        }
        assert.equal(typeof e.error?.code, 'string', a.body);
        assert.ok(typeof e.error?.message === 'string' && e.error.message.length > 0, a.body);
        if (a.status === 400 && e.error.code === 'BadRequest') assert.match(e.error.message as string, /^(querystring|params|body|path)\b|JSON|[Bb]ody/, a.body);
      }
    }), fuzzParams(400, { interruptAfterTimeLimit: 150_000 }));
    assert.deepEqual(await get<unknown>('/api/v1/allocations'), before, 'the fuzzing changed the allocations');
    assert.equal((await daemon.api('/healthz')).status, 200);
  });

  it('bytes that are not HTTP get a 400 or a closed connection, and the daemon serves on', async () => {
    const raw = (bytes: Buffer) => new Promise<string>((resolve, reject) => {
      const s = connect(daemon.port, '127.0.0.1');
      let got = '';
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no answer and no close within 10 s for ${JSON.stringify(bytes.toString('latin1').slice(0, 60))}`));
      }, 10_000);
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
      s.end(bytes);
    });
    const inputs = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.constantFrom('GET / HTTP/1.1\r\n\r\n', 'GET /api/v1/pools HTTP/9.9\r\nHost: x\r\n\r\n', 'GET /api/v1/pools HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
        'POST /api/v1/reconcile HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'GET /\0 HTTP/1.1\r\n\r\n', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`).map((t) => Buffer.from(t, 'latin1')),
    );
    await fc.assert(fc.asyncProperty(inputs, async (b) => {
      const answer = await raw(b);
      // Node's parser answers malformed requests with 400 and closes; a request that parsed far enough
      // gets the API's answer (401 before a broken body is read, for example). Never a 5xx.
      if (answer !== '') assert.match(answer, /^HTTP\/1\.1 [1-4]\d\d /, `answered ${answer.slice(0, 120)}`);
    }), fuzzParams(150));
    assert.equal((await daemon.api('/healthz')).status, 200);
  });

  it('random config files through reload: applied whole, or refused whole with the fields named', async () => {
    const token = daemon.token();
    const reload = async () => {
      const a = await send(daemon.port, { method: 'POST', path: '/api/v1/config/reload', headers: { authorization: `Bearer ${token}` } });
      return { status: a.status, body: JSON.parse(a.body) as { error?: { code: string; message: string }; problems?: string[] } };
    };
    const paths = configPaths(original);
    const poolsOf = (c: Record<string, unknown>) => (c.pools as Array<{ name: string; addresses: string[] }>).map((p) => ({ name: p.name, addresses: p.addresses }));
    // Valid edits of the pools (so both outcomes occur), and breakage anywhere.
    const change = fc.oneof(
      fc.record({ kind: fc.constant('junk' as const), at: fc.constantFrom(...paths), value: junkValue }),
      fc.record({ kind: fc.constant('remove' as const), at: fc.constantFrom(...paths) }),
      fc.record({ kind: fc.constant('add-pool' as const), name: fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/), third: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('rename' as const), name: fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/) }),
    );
    let accepted = 0;
    let refused = 0;
    await fc.assert(fc.asyncProperty(fc.array(change, { minLength: 1, maxLength: 3 }), async (changes) => {
      let next: unknown = original;
      for (const c of changes) {
        const parent = c.kind === 'junk' || c.kind === 'remove' ? valueAt(next, c.at.slice(0, -1)) : undefined;
        const editable = parent !== null && typeof parent === 'object';
        if (c.kind === 'junk') next = editable ? withValue(next, c.at, { set: c.value }) : next;
        else if (c.kind === 'remove') next = editable ? withValue(next, c.at, { remove: true }) : next;
        else if (c.kind === 'add-pool' && Array.isArray((next as Record<string, unknown>).pools)) next = withValue(next, ['pools', ((next as { pools: unknown[] }).pools).length], { set: { name: c.name, addresses: [`203.0.113.${c.third}/32`] } });
        else if (c.kind === 'rename' && typeof valueAt(next, ['pools', 1]) === 'object' && valueAt(next, ['pools', 1]) !== null) next = withValue(next, ['pools', 1, 'name'], { set: c.name });
      }
      const pools = await get<{ items: unknown[] }>('/api/v1/pools');
      // What a reload must never change: which Service holds which address from which pool. (Whether an
      // address counts as orphaned follows the pools, so that flag may change.)
      const held = async () => (await get<{ items: Array<{ address: string; uid: string; pool: string }> }>('/api/v1/allocations')).items.map((a) => `${a.uid} ${a.address} ${a.pool}`);
      const allocations = await held();
      writeFileSync(configPath, stringify(next));
      const r = await reload();
      assert.ok(r.status === 200 || r.status === 400, `reload answered ${r.status}: ${JSON.stringify(r.body)}`);
      if (r.status === 200) {
        accepted++;
        const now = (await get<{ items: Array<{ name: string; addresses: string[] }> }>('/api/v1/pools')).items.map((p) => ({ name: p.name, addresses: p.addresses }));
        assert.deepEqual(now, poolsOf(next as Record<string, unknown>), 'accepted, but the pools are not the new ones');
      } else {
        refused++;
        assert.equal(r.body.error?.code, 'InvalidConfig');
        assert.ok(r.body.problems && r.body.problems.length > 0);
        for (const p of r.body.problems) assert.match(p, /^(\(top level\)|[\w-]+|\["[^"]*"\])(\[\d+\]|\.[\w-]+|\["(?:[^"\\]|\\.)*"\])*: \S|: YAML error: /, p);
        // Named: a problem in the section that was changed (removing vrrp.enabled makes vrrp.groups required,
        // for example); the loader's own fuzz test checks the exact field.
        const sections = changes.filter((c) => c.kind === 'junk' || c.kind === 'remove').map((c) => String((c as { at: (string | number)[] }).at[0]));
        assert.ok(sections.length === 0 || r.body.problems.some((p) => sections.some((s) => p.startsWith(s) || p.includes(s))),
          `refused without naming ${sections.join(', ')}: ${r.body.problems.join('; ')}`);
        assert.deepEqual(await get<unknown>('/api/v1/pools'), pools, 'refused, yet the pools changed');
      }
      assert.deepEqual(await held(), allocations, 'a reload moved an allocation');
    }), fuzzParams(60, { interruptAfterTimeLimit: 120_000 }));
    writeFileSync(configPath, stringify(original));
    assert.equal((await reload()).status, 200);
    assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}: both outcomes should occur`);
    assert.doesNotMatch(daemon.log(), /"level":(50|60).*(unhandled|internal error)/i);
  });
});
