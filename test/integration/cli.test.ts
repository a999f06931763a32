// The `ipvs-lb` command as an operator runs it: a subprocess against a real daemon (control plane only) on
// the API simulator. Every command in every output format, the documented exit codes (docs/cli.md), the
// read-only ledger fallback once the daemon is down, and doctor's cluster findings.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { KubeSim, sampleCluster, type Cluster } from '../../lab/kube-sim/index.js';
import { cli, eventually, repoRoot, startDaemon, type DaemonHandle } from '../support/daemon.js';

interface Run { code: number; stdout: string; stderr: string }

function ipvsLb(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command in all three formats; json and yaml must carry the same data, the table must be text. */
async function allFormats(args: string[], expectCode = 0): Promise<{ data: unknown; table: Run }> {
  const [table, json, yaml] = await Promise.all(['table', 'json', 'yaml'].map((f) => ipvsLb(...args, '--output', f)));
  for (const [f, r] of [['table', table], ['json', json], ['yaml', yaml]] as const) assert.equal(r!.code, expectCode, `${args.join(' ')} -o ${f}: exit ${r!.code}\n${r!.stderr}`);
  const data = JSON.parse(json!.stdout) as unknown;
  assert.deepEqual(parse(yaml!.stdout), data, `${args.join(' ')}: yaml and json differ`);
  assert.throws(() => JSON.parse(table!.stdout), SyntaxError, 'the table is not JSON');
  return { data, table: table! };
}

/** One run with --output json, for checks that are about the data rather than the formats. */
async function jsonOf(args: string[], expectCode = 0): Promise<unknown> {
  const r = await ipvsLb(...args, '--output', 'json');
  assert.equal(r.code, expectCode, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

describe('ipvs-lb CLI (subprocess)', { timeout: 240_000 }, () => {
  let sim: KubeSim;
  let cluster: Cluster;
  let dir: string;
  let daemon: DaemonHandle;
  let config: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-cli-'));
    sim = await KubeSim.start({});
    const kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    cluster = sampleCluster(sim);
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
    daemon = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig });
    config = join(dir, 'lb1', 'config.yaml');
    sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80 }] } });
    cluster.placeEndpoints('default', 'web', [{ node: 'node-1' }, { node: 'node-2' }]);
    await eventually('allocation', async () => ((await daemon.api<{ total: number }>('/api/v1/allocations')).body.total === 1 ? true : undefined));
    await eventually('virtual service', async () => ((await daemon.api<{ items: unknown[] }>('/api/v1/virtual-services')).body.items.length > 0 ? true : undefined));
  });
  after(async () => {
    await daemon?.stop('SIGKILL');
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('status: host, readiness, allocator role, pools and the last reconcile', async () => {
    const { data, table } = await allFormats(['status', '--config', config]);
    const d = data as { source: string; host: string; health: { ready: boolean }; allocator: { leader: boolean }; services: { allocated: number }; pools: Array<{ name: string; used: number }> };
    assert.equal(d.source, 'api');
    assert.equal(d.host, 'lb1');
    assert.equal(d.health.ready, true);
    assert.equal(d.allocator.leader, true);
    assert.equal(d.services.allocated, 1);
    assert.deepEqual(d.pools.map((p) => [p.name, p.used]), [['default', 1]]);
    assert.match(table.stdout, /^host lb1 /m);
    assert.match(table.stdout, /^ready: yes/m);
    assert.match(table.stdout, /^allocator: this host/m);
    assert.match(table.stdout, /^POOL\s+SIZE\s+USED/m);
  });

  it('pools, allocations (with filters), services and show', async () => {
    const pools = (await allFormats(['pools', '--config', config])).data as Array<{ name: string; size: string; used: number }>;
    assert.deepEqual(pools.map((p) => [p.name, p.size, p.used]), [['default', '257', 1]]);
    const { data, table } = await allFormats(['allocations', '--config', config]);
    assert.deepEqual((data as Array<{ address: string; name: string }>).map((a) => `${a.name}=${a.address}`), ['web=192.0.2.1']);
    assert.match(table.stdout, /^192\.0\.2\.1\s+default\s+default\/web\s+TCP\/80/m);
    assert.deepEqual(await jsonOf(['allocations', '--config', config, '-n', 'other']), []);
    assert.deepEqual((await jsonOf(['allocations', '--config', config, '--address', '192.0.2.1']) as unknown[]).length, 1);
    const vs = (await allFormats(['services', '--config', config])).data as Array<{ key: string; realServers: Array<{ node: string }> }>;
    assert.deepEqual(vs.map((v) => v.key), ['TCP/192.0.2.1:80']);
    const show = await allFormats(['show', 'default/web', '--config', config]);
    assert.equal((show.data as { allocations: Array<{ address: string }> }).allocations[0]!.address, '192.0.2.1');
    assert.match(show.table.stdout, /^service default\/web/m);
  });

  it('reconcile needs the token: it works with the daemon\'s, exits 3 with a wrong one', async () => {
    const r = await allFormats(['reconcile', '--config', config]);
    assert.deepEqual(Object.keys(r.data as object).sort(), ['durationMs', 'errors', 'operations']);
    const wrong = join(dir, 'wrong.yaml');
    const tokenFile = join(dir, 'wrong-token');
    writeFileSync(tokenFile, 'not-the-token-0123456789\n');
    writeFileSync(wrong, readFileSync(config, 'utf8').replace(/api:\n {2}listen: (\S+)/, `api:\n  listen: $1\n  tokenFile: ${tokenFile}`));
    const denied = await ipvsLb('reconcile', '--config', wrong);
    assert.equal(denied.code, 3, denied.stderr);
    assert.match(denied.stderr, /POST \/api\/v1\/reconcile: 401 a valid bearer token is required/);
  });

  it('validate and render-keepalived in every format', async () => {
    const example = join(repoRoot, 'examples', 'config.yaml');
    const v = (await allFormats(['validate', '--config', example])).data as { valid: boolean; pools: Array<{ name: string; size: string }> };
    assert.equal(v.valid, true);
    assert.equal(v.pools[0]!.name, 'default');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'interface: eth0\npools: [{name: Bad, addresses: [192.0.2.0/33]}]\nvrrp: {enabled: false}\n');
    const invalid = (await allFormats(['validate', '--config', bad], 1)).data as { valid: boolean; problems: string[] };
    assert.equal(invalid.valid, false);
    assert.ok(invalid.problems.some((p) => p.startsWith('pools[0].name:')), invalid.problems.join('\n'));
    assert.ok(invalid.problems.some((p) => p.startsWith('pools[0].addresses[0]:')), invalid.problems.join('\n'));
    const table = await ipvsLb('validate', '--config', bad);
    assert.match(table.stderr, /2 problems/);
    const k = (await allFormats(['render-keepalived', '--config', example])).data as { config: string };
    assert.match(k.config, /vrrp_instance/);
    assert.equal((await ipvsLb('render-keepalived', '--config', example)).stdout.trimEnd(), k.config.trimEnd());
  });

  it('exit code 2 for wrong usage, 1 for a failed command', async () => {
    for (const args of [['frobnicate'], ['pools', '--output', 'xml'], ['show', 'no-slash', '--config', config], ['allocations', '--bogus'], ['doctor', '--timeout', 'soon', '--config', config]]) {
      const r = await ipvsLb(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.length > 0, `${args.join(' ')} says why`);
    }
    const missing = await ipvsLb('show', 'default/nothing', '--config', config);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404 service default\/nothing is not served by ipvs-lb/);
    const noConfig = await ipvsLb('pools', '--config', join(dir, 'absent.yaml'));
    assert.equal(noConfig.code, 1);
    assert.match(noConfig.stderr, /absent\.yaml: cannot read the config file: no such file/);
  });

  it('daemon: exit 1 for an invalid config, 6 when the API token file is missing or too short', async () => {
    const bad = join(dir, 'daemon-bad.yaml');
    writeFileSync(bad, 'interface: eth0\npools: []\nvrrp: {enabled: false}\n');
    const invalid = await ipvsLb('daemon', '--no-kernel', '--config', bad);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /invalid configuration .*daemon-bad\.yaml:\n {2}pools: must not be empty/);
    const base = parse(readFileSync(config, 'utf8')) as { api: { listen: string } };
    for (const [name, content, message] of [['absent', undefined, /api\.tokenFile: cannot read \S+absent-token: ENOENT/], ['short', 'abc\n', /api\.tokenFile: the token in \S+short-token is shorter than 16 characters/]] as const) {
      const tokenFile = join(dir, `${name}-token`);
      if (content !== undefined) writeFileSync(tokenFile, content);
      const file = join(dir, `daemon-${name}.yaml`);
      writeFileSync(file, stringify({ ...(parse(readFileSync(config, 'utf8')) as object), stateDir: join(dir, `state-${name}`), api: { listen: base.api.listen.replace(/:\d+$/, ':1'), tokenFile } }));
      const r = await ipvsLb('daemon', '--no-kernel', '--config', file);
      assert.equal(r.code, 6, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, message);
    }
  });

  it('doctor reports kube-proxy without strictARP and a Service with ipMode Proxy, and exits 1', async () => {
    cluster.setKubeProxyConfig({ mode: 'ipvs', strictARP: false });
    // Ours, but asking for an address outside every pool: the daemon refuses it and leaves the status that
    // another controller wrote alone, so doctor sees it as it is.
    const svc = sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'proxied', namespace: 'default', annotations: { 'ipvs-lb.io/load-balancer-ips': '203.0.113.5' } }, spec: { type: 'LoadBalancer', ports: [{ port: 81 }] } });
    sim.update({ ...svc, status: { loadBalancer: { ingress: [{ ip: '192.0.2.200', ipMode: 'Proxy' }] } } }, 'status');
    try {
      const { data, table } = await allFormats(['doctor', '--config', config], 1);
      const checks = (data as { checks: Array<{ group: string; name: string; status: string; message: string }> }).checks;
      const by = (group: string, name?: string) => checks.find((c) => c.group === group && (name === undefined || c.name === name));
      assert.equal(by('config')!.status, 'ok');
      assert.equal(by('api')!.status, 'ok', by('api')!.message);
      assert.equal(by('kube-proxy')!.status, 'fail');
      assert.match(by('kube-proxy')!.message, /mode ipvs without strictARP/);
      const proxied = by('services', 'default/proxied')!;
      assert.equal(proxied.status, 'fail');
      assert.match(proxied.message, /ingress\[0\] 192\.0\.2\.200 has ipMode Proxy/);
      assert.ok(!checks.some((c) => c.group === 'services' && c.name === 'default/web'), 'web carries ipMode VIP');
      assert.ok(checks.filter((c) => c.group === 'rbac').every((c) => c.status === 'ok'));
      // The host checks ran too: the module list starts with ip_vs and the default scheduler.
      assert.deepEqual(checks.filter((c) => c.group === 'kernel').map((c) => c.name), ['ip_vs', 'ip_vs_mh']);
      assert.match(table.stdout, /^kube-proxy\s+kube-system\/kube-proxy\s+FAIL\s+mode ipvs without strictARP/m);
      assert.match(table.stdout, /^\d+ problems?, \d+ warnings?$/m);

      const quick = JSON.parse((await ipvsLb('doctor', '--config', config, '--no-kubernetes', '-o', 'json')).stdout) as { checks: Array<{ group: string }> };
      assert.ok(!quick.checks.some((c) => ['rbac', 'kube-proxy', 'services', 'kubernetes'].includes(c.group)));
    } finally {
      cluster.setKubeProxyConfig({ mode: 'ipvs', strictARP: true });
      sim.delete('v1', 'Service', 'proxied', 'default');
    }
  });

  it('doctor with an unreachable API server fails that check and skips the cluster checks without hanging', async () => {
    const elsewhere = join(dir, 'elsewhere.yaml');
    const kc = join(dir, 'kubeconfig-down');
    // A server that never answers: a listening port of ours that accepts and stays silent would need a
    // helper; a closed port on loopback is refused at once.
    writeFileSync(kc, readFileSync(join(dir, 'kubeconfig'), 'utf8').replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1'));
    writeFileSync(elsewhere, readFileSync(config, 'utf8').replace(/kubeconfig: \S+/, `kubeconfig: ${kc}`));
    const data = await jsonOf(['doctor', '--config', elsewhere], 1);
    const checks = (data as { checks: Array<{ group: string; name: string; status: string; message: string }> }).checks;
    const server = checks.find((c) => c.group === 'kubernetes' && c.name === 'api server')!;
    assert.equal(server.status, 'fail');
    assert.match(server.message, /cannot reach https:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
    assert.equal(checks.find((c) => c.group === 'kubernetes' && c.status === 'skip')!.message, 'the API server does not answer');
    assert.ok(!checks.some((c) => c.group === 'rbac'));
  });

  it('with the daemon down: pools, allocations and show read the ledger read-only; status and services exit 3', async () => {
    const online = {
      pools: await jsonOf(['pools', '--config', config]),
      allocations: await jsonOf(['allocations', '--config', config]),
    };
    assert.equal(await daemon.stop('SIGTERM'), 0);
    for (const cmd of ['pools', 'allocations'] as const) {
      const { data, table } = await allFormats([cmd, '--config', config]);
      assert.deepEqual(data, online[cmd], `${cmd} from the ledger equals ${cmd} from the API`);
      assert.match(table.stderr, /the daemon's API at http:\/\/127\.0\.0\.1:\d+ does not answer \(ECONNREFUSED\); showing the ledger \S+ledger\.sqlite, opened read-only/);
    }
    const show = { data: await jsonOf(['show', 'default/web', '--config', config]) };
    assert.equal((show.data as { source: string; allocations: Array<{ address: string }> }).allocations[0]!.address, '192.0.2.1');
    const status = await allFormats(['status', '--config', config], 3);
    const s = status.data as { source: string; daemon: { reachable: boolean }; allocations: number; lastChange: { action: string } };
    assert.deepEqual([s.source, s.daemon.reachable, s.allocations, s.lastChange.action], ['ledger', false, 1, 'allocate']);
    assert.match(status.table.stdout, /^ledger \S+: 1 allocation; last change \S+: allocate 192\.0\.2\.1 default\/web$/m);
    assert.match(status.table.stdout, /^daemon: NOT RUNNING/m);
    const services = await ipvsLb('services', '--config', config);
    assert.equal(services.code, 3);
    assert.match(services.stderr, /cannot reach the ipvs-lb API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); is the daemon running\?/);
    // No ledger either (a host where the daemon never ran): 3, and both reasons.
    const fresh = join(dir, 'fresh.yaml');
    writeFileSync(fresh, stringify({ ...(parse(readFileSync(config, 'utf8')) as object), stateDir: join(dir, 'never-ran') }));
    const none = await ipvsLb('pools', '--config', fresh);
    assert.equal(none.code, 3);
    assert.match(none.stderr, /and the ledger cannot be read either: ledger \S+never-ran\/ledger\.sqlite: /);
  });
});
