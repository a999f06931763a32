// The daemon's control plane against the API simulator, with the real client-node, real SQLite ledgers and
// the real kubectl: the walkthrough of shared/seeds/002, leader failover between two daemons, an API
// outage, and injected watch drops and error answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { KubeSim, sampleCluster } from '../../lab/kube-sim/index.js';
import { eventually, kubectlPath, startDaemon, type DaemonHandle } from '../support/daemon.js';

const run = promisify(execFile);

const whoami = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: whoami, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: whoami}}
  template:
    metadata: {labels: {app: whoami}}
    spec:
      containers:
        - name: whoami
          image: containous/whoami
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports: [{name: http, port: 80, targetPort: 80}]
`;

function svcJson(name: string, extra: Record<string, unknown> = {}) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', ...extra }, spec: { type: 'LoadBalancer', selector: { app: name }, ports: [{ port: 80 }] } };
}

function ingressOf(sim: KubeSim, name: string): string[] {
  const s = sim.get('v1', 'Service', name, 'default') as { status?: { loadBalancer?: { ingress?: { ip: string; ipMode?: string }[] } } } | undefined;
  return (s?.status?.loadBalancer?.ingress ?? []).map((i) => `${i.ip}/${i.ipMode}`);
}

/** A daemon's ledger as its API reports it (the ledger file itself is locked by its one writer). */
async function ledgerAllocations(d: DaemonHandle): Promise<string[]> {
  const r = await d.api<{ items: { namespace: string; name: string; address: string }[] }>('/api/v1/allocations?limit=1000');
  return r.body.items.map((a) => `${a.namespace}/${a.name}=${a.address}`);
}

describe('daemon against the API simulator', { timeout: 240_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let kubeconfig: string;
  const daemons: DaemonHandle[] = [];
  const kubectl = (...args: string[]) => run(kubectlPath, args, { env: { ...process.env, KUBECONFIG: kubeconfig } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-daemon-'));
    sim = await KubeSim.start({ historyWindow: 200 });
    kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    sampleCluster(sim);
    // What deploy/rbac.yaml creates: the Lease lives in this namespace.
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
  });
  after(async () => {
    for (const d of daemons) {
      const code = await d.stop('SIGKILL');
      if (process.env.IPVS_LB_TEST_LOGS) process.stderr.write(`--- ${d.name} (exit ${code})\n${d.log()}\n`);
    }
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('walkthrough: kubectl apply gets the pool\'s first address with ipMode VIP, delete releases it, the audit log shows both', async () => {
    const lb1 = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig });
    daemons.push(lb1);
    const manifest = join(dir, 'whoami.yaml');
    (await import('node:fs')).writeFileSync(manifest, whoami);
    await kubectl('apply', '-f', manifest);
    const { stdout: pending } = await kubectl('get', 'svc', 'whoami');
    assert.match(pending, /whoami\s+LoadBalancer\s+\S+\s+(<pending>|192\.0\.2\.1)\s+80:\d+\/TCP/);
    const external = await eventually('EXTERNAL-IP', async () => {
      const { stdout } = await kubectl('get', 'svc', 'whoami');
      return /whoami\s+LoadBalancer\s+\S+\s+192\.0\.2\.1\s+80:\d+\/TCP/.test(stdout) ? stdout : undefined;
    });
    assert.match(external, /192\.0\.2\.1/);
    assert.deepEqual(ingressOf(sim, 'whoami'), ['192.0.2.1/VIP']);
    const events = await eventually('IPAllocated event', async () => {
      const { stdout } = await kubectl('get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=whoami', '-o', 'json');
      const items = (JSON.parse(stdout) as { items: { reason: string; message: string }[] }).items;
      return items.some((e) => e.reason === 'IPAllocated') ? items : undefined;
    });
    assert.ok(events.some((e) => e.message === 'allocated 192.0.2.1 from pool default'));

    await kubectl('delete', '-f', manifest);
    await eventually('release', async () => ((await lb1.api<{ total: number }>('/api/v1/allocations')).body.total === 0 ? true : undefined));
    const audit = (await lb1.api<{ items: { action: string; address: string; service: string }[] }>('/api/v1/events?limit=10')).body.items;
    const forWhoami = audit.filter((r) => r.service === 'default/whoami').map((r) => `${r.action} ${r.address}`);
    assert.deepEqual(forWhoami.slice(0, 2).sort(), ['allocate 192.0.2.1', 'release 192.0.2.1'].sort());
  });

  it('two daemons: one allocates; when it dies the other takes the Lease and serves new Services; nothing moves; ledgers agree', async () => {
    const lb1 = daemons[0]!;
    const lb2 = await startDaemon({ name: 'lb2', dir: join(dir, 'lb2'), kubeconfig });
    daemons.push(lb2);
    for (const n of ['alpha', 'beta', 'gamma']) sim.create(svcJson(n));
    const before = await eventually('three allocations', () => {
      const got = ['alpha', 'beta', 'gamma'].map((n) => ingressOf(sim, n));
      return got.every((g) => g.length === 1) ? got : undefined;
    });
    // Quarantine keeps whoami's released .1 out of use: the next three are .2, .3, .4.
    assert.deepEqual(before.flat().sort(), ['192.0.2.2/VIP', '192.0.2.3/VIP', '192.0.2.4/VIP']);
    const lease = sim.get('coordination.k8s.io/v1', 'Lease', 'ipvs-lb-allocator', 'ipvs-lb') as { spec: { holderIdentity: string } };
    assert.equal(lease.spec.holderIdentity, 'lb1');
    await eventually('lb2 follows', async () => ((await ledgerAllocations(lb2)).length === 3 ? true : undefined));

    assert.equal(await lb1.stop('SIGKILL'), 'SIGKILL');
    sim.create(svcJson('delta'));
    const delta = await eventually('delta allocated by lb2', () => (ingressOf(sim, 'delta').length ? ingressOf(sim, 'delta') : undefined));
    // lb2 joined after whoami's release, so its ledger holds no quarantine for .1: the lowest free is .1.
    assert.deepEqual(delta, ['192.0.2.1/VIP']);
    assert.equal((sim.get('coordination.k8s.io/v1', 'Lease', 'ipvs-lb-allocator', 'ipvs-lb') as { spec: { holderIdentity: string } }).spec.holderIdentity, 'lb2');
    assert.deepEqual(['alpha', 'beta', 'gamma'].map((n) => ingressOf(sim, n)), before);

    // lb1 comes back as a follower on its own ledger and catches up; both ledgers agree.
    const lb1b = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig });
    daemons[0] = lb1b;
    const agreed = await eventually('ledgers agree', async () => {
      const a = await ledgerAllocations(lb1b);
      const b = await ledgerAllocations(lb2);
      return a.length === 4 && a.join() === b.join() ? a : undefined;
    });
    assert.deepEqual([...agreed].sort(), ['default/alpha=192.0.2.2', 'default/beta=192.0.2.3', 'default/gamma=192.0.2.4', 'default/delta=192.0.2.1'].sort());
    // The restarted host re-confirmed its ledger against the cluster, it did not allocate anew.
    assert.match(lb1b.log(), /"confirmed":3/);
  });

  it('API outage: nothing changes meanwhile, health says so, and afterwards everything converges', async () => {
    const [lb1, lb2] = [daemons[0]!, daemons[1]!];
    await sim.goDown();
    // Changes made while no client can see them: one Service created, one deleted.
    sim.create(svcJson('during'));
    sim.delete('v1', 'Service', 'alpha', 'default');
    const degraded = await eventually('degraded health', async () => {
      const h = await lb2.api<{ checks: { kubernetes: boolean }; messages: string[] }>('/readyz');
      return h.body.checks.kubernetes ? undefined : h.body;
    });
    assert.match(degraded.messages.join('\n'), /fail static/);
    assert.ok((await ledgerAllocations(lb2)).includes('default/alpha=192.0.2.2'), 'nothing is released while the API is unreachable');
    sim.compact();
    await sim.comeUp();
    await eventually('converged after the outage', async () => {
      const during = ingressOf(sim, 'during');
      const a = await ledgerAllocations(lb1);
      const b = await ledgerAllocations(lb2);
      return during.length === 1 && !b.includes('default/alpha=192.0.2.2') && a.join() === b.join() && b.length === 4 ? b : undefined;
    }, 40_000);
  });

  it('watch drops, 410s, 429s and 500s: convergence without duplicates or lost events', async () => {
    const lb2 = daemons[1]!;
    sim.failNext(5, { status: 429, retryAfterSeconds: 1 });
    sim.failNext(5, { status: 500 });
    for (let i = 0; i < 10; i++) {
      sim.create(svcJson(`burst-${i}`));
      if (i % 3 === 0) sim.dropWatches();
      if (i === 5) sim.compact();
    }
    sim.delete('v1', 'Service', 'burst-4', 'default');
    const names = Array.from({ length: 10 }, (_, i) => `burst-${i}`).filter((n) => n !== 'burst-4');
    const ips = await eventually('all bursts allocated', () => {
      const got = names.map((n) => ingressOf(sim, n));
      return got.every((g) => g.length === 1) ? got.flat() : undefined;
    }, 40_000);
    assert.equal(new Set(ips).size, ips.length, `duplicate addresses: ${ips.join(', ')}`);
    const ledger = await eventually('burst-4 never kept', async () => {
      const l = await ledgerAllocations(lb2);
      return l.some((x) => x.startsWith('default/burst-4=')) ? undefined : l;
    });
    const addresses = ledger.map((l) => l.split('=')[1]);
    assert.equal(new Set(addresses).size, addresses.length);
  });
});
