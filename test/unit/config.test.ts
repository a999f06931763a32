import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, after } from 'node:test';
import { promisify } from 'node:util';
import { parseConfigText } from '../../src/config/load.js';
import { summarizeConfig } from '../../src/config/summary.js';

const run = promisify(execFile);
const cli = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', '..', 'bin', 'ipvs-lb.js');

function parse(text: string) {
  return parseConfigText(text, 'test.yaml');
}
function problems(text: string): string[] {
  const r = parse(text);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.problems;
}
const minimal = 'interface: eth0\nvrrp: {enabled: false}\npools:\n  - name: p\n    addresses: [192.0.2.0/24]\n';

describe('config loader', () => {
  it('fills defaults for a minimal file', () => {
    const r = parse(minimal);
    assert.ok(r.ok);
    const c = r.config;
    assert.equal(c.forwarding, 'dr');
    assert.equal(c.scheduler, 'mh');
    assert.equal(c.kubernetes.kubeconfig, '/etc/ipvs-lb/kubeconfig');
    assert.equal(c.kubernetes.lease.durationSeconds, 15);
    assert.deepEqual(c.api.listen, { host: '127.0.0.1', port: 9742 });
    assert.equal(c.ipam.releaseQuarantineSeconds, 60);
    assert.equal(c.pools[0]!.autoAssign, true);
    assert.equal(c.pools[0]!.avoidBuggyIPs, false);
    assert.deepEqual(c.reconcile, { resyncSeconds: 30, coalesceMs: 50, verifyIntervalMs: 1000, verifyServices: 100 });
  });

  it('takes the rolling verification off with 0 and refuses an interval that would only keep the kernel busy', () => {
    const off = parse(`${minimal}reconcile: {verifyIntervalMs: 0}\n`);
    assert.ok(off.ok && off.config.reconcile.verifyIntervalMs === 0);
    assert.deepEqual(problems(`${minimal}reconcile: {verifyIntervalMs: 20, verifyServices: 0}\n`), [
      'reconcile.verifyServices: must be an integer between 1 and 100000 (got 0)',
      'reconcile.verifyIntervalMs: must be 0 (off) or at least 100 (got 20)',
    ]);
  });

  it('reports three mistakes in three places at once, each with path and value', () => {
    const p = problems(`
interface: eth0
forwarding: direct
pools:
  - name: Default
    addresses: [192.0.2.0/24]
vrrp:
  groups:
    - {name: a, virtualRouterId: 51, priority: 255}
`);
    assert.deepEqual(p.sort(), [
      'forwarding: must be one of dr, tun, nat (got "direct")',
      'pools[0].name: must be a lower-case DNS label (a-z, 0-9, "-", at most 63 characters) (got "Default")',
      'vrrp.groups[0].priority: must be an integer between 1 and 254 (got 255)',
    ]);
  });

  it('rejects unknown fields and suggests the near name', () => {
    const p = problems(minimal + 'logging: {levle: debug}\n');
    assert.deepEqual(p, ['logging.levle: unknown field; did you mean "level"? (got "debug")']);
  });

  it('rejects malformed, reversed, mixed-family and overlapping pool entries, naming pool and entry', () => {
    const p = problems(`
interface: eth0
vrrp: {enabled: false}
pools:
  - name: a
    addresses: [192.0.2.0/24, 192.0.2.1/24, 198.51.100.9-198.51.100.1, 192.0.2.1-2001:db8::1, 300.1.1.1]
  - name: b
    addresses: [192.0.2.128/25]
`);
    assert.deepEqual(p, [
      'pools[0].addresses[1]: is not a valid CIDR: host bits are set (the network is 192.0.2.0/24) (got "192.0.2.1/24")',
      'pools[0].addresses[2]: is not a valid range: it ends before it starts (got "198.51.100.9-198.51.100.1")',
      'pools[0].addresses[3]: is not a valid range: it mixes IPv4 and IPv6 (got "192.0.2.1-2001:db8::1")',
      'pools[0].addresses[4]: is not a CIDR, an a-b range or an IP address (got "300.1.1.1")',
      'pools[1].addresses[0]: overlaps pools[0].addresses[0] "192.0.2.0/24" of pool "a" (got "192.0.2.128/25")',
    ]);
  });

  it('checks relations between fields', () => {
    const p = problems(`
interface: eth0
pools:
  - {name: a, addresses: [192.0.2.0/24], vrrpGroup: nope}
  - {name: a, addresses: [198.51.100.0/24]}
kubernetes:
  lease: {durationSeconds: 10, renewDeadlineSeconds: 10}
vrrp:
  groups:
    - {name: g, virtualRouterId: 7, priority: 100}
    - {name: h, virtualRouterId: 7, priority: 100}
healthCheck: {intervalSeconds: 1, timeoutSeconds: 2}
api: {listen: "192.0.2.5:9742"}
`);
    assert.deepEqual(p, [
      'kubernetes.lease.renewDeadlineSeconds: must be less than kubernetes.lease.durationSeconds (10) (got 10)',
      'pools[1].name: duplicates pools[0].name (got "a")',
      'vrrp.groups[1].virtualRouterId: is already used on interface eth0 by vrrp.groups[0] (got 7)',
      'pools[0].vrrpGroup: names no group in vrrp.groups (g, h) (got "nope")',
      'api.tokenFile: is required when api.listen is not a loopback address (listen is 192.0.2.5:9742)',
      'healthCheck.timeoutSeconds: must be less than healthCheck.intervalSeconds (1) (got 2)',
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with line numbers', () => {
    const p = problems('interface: eth0\ninterface: eth1\n');
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^test\.yaml:2:1: YAML error: .*unique/i);
  });

  it('summarizes pool sizes with avoidBuggyIPs and IPv6 /64 without enumerating', () => {
    const r = parse(`
interface: eth0
vrrp: {enabled: false}
pools:
  - {name: v4, addresses: [192.0.2.0/24, 198.51.100.1-198.51.100.3], avoidBuggyIPs: true}
  - {name: v6, addresses: ["2001:db8::/64"]}
`);
    assert.ok(r.ok);
    const s = summarizeConfig(r.config);
    assert.match(s, /v4: 257 addresses/);
    assert.match(s, /v6: 18446744073709551615 addresses/);
  });
});

describe('ipvs-lb validate (subprocess)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 with a summary for the shipped example', async () => {
    const { stdout } = await run(process.execPath, [cli, 'validate', '--config', join(cli, '..', '..', 'examples', 'config.yaml')]);
    assert.match(stdout, /valid/);
    assert.match(stdout, /default: 257 addresses/);
    assert.match(stdout, /a: vrid 51 on eth0/);
  });

  it('exits 1 and names every problem', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'interface: eth0\nscheduler: fastest\npools: []\nvrrp: {groups: [{name: g, virtualRouterId: 0, priority: 1}]}\n');
    await assert.rejects(run(process.execPath, [cli, 'validate', '--config', file]), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /3 problems/);
      assert.match(err.stderr, /pools: must not be empty \(got \[\]\)/);
      assert.match(err.stderr, /scheduler: must be one of rr, wrr, .* \(got "fastest"\)/);
      assert.match(err.stderr, /vrrp\.groups\[0\]\.virtualRouterId: must be an integer between 1 and 255 \(got 0\)/);
      return true;
    });
  });

  it('exits 2 on an unknown command', async () => {
    await assert.rejects(run(process.execPath, [cli, 'frobnicate']), (err: { code: number }) => err.code === 2);
  });
});
