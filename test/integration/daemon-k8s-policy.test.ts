// What the daemon does and does not touch, and what it tells the user, against the API simulator: strict
// class mode (class-less Services belong to another implementation), ingress written by another controller
// never touched, the Events a user sees (IPAllocated, IPReleased, AllocationFailed with its reason,
// InvalidAnnotation, SharingConflict), a bad annotation that affects only its own Service, and the client
// QPS/burst budget held over a burst of Services.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeSim, sampleCluster } from '../../lab/kube-sim/index.js';
import { eventually, startDaemon, type DaemonHandle } from '../support/daemon.js';
import { shippedRbacRules } from '../support/rbac.js';

const CLASS = 'ipvs-lb.io/external';
const QPS = 5;
const BURST = 5;

interface Svc { metadata: { name: string; resourceVersion: string; annotations?: Record<string, string> }; spec: { type: string }; status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string; ipMode?: string }[] } } }
interface Ev { reason: string; message: string; type: string; involvedObject: { name: string }; source?: { component?: string } }

function service(name: string, o: { cls?: string; annotations?: Record<string, string>; port?: number } = {}) {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name, namespace: 'default', ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: { type: 'LoadBalancer', ...(o.cls === undefined ? {} : { loadBalancerClass: o.cls }), ports: [{ port: o.port ?? 80 }] },
  };
}

describe('daemon policy against the API simulator (strict class, foreign ingress, Events, QPS)', { timeout: 240_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let daemon: DaemonHandle;
  const get = (name: string) => sim.get('v1', 'Service', name, 'default') as unknown as Svc;
  const ingress = (name: string) => (get(name).status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname);
  const eventsOf = (name: string) => (sim.list('v1', 'Event', 'default') as unknown as Ev[]).filter((e) => e.involvedObject.name === name && e.source?.component === 'ipvs-lb');
  const allocated = (name: string) => eventually(`${name} allocated`, () => (ingress(name).length > 0 ? ingress(name) : undefined), 60_000);
  const eventOf = (name: string, reason: string) => eventually(`${reason} on ${name}`, () => eventsOf(name).find((e) => e.reason === reason), 60_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-policy-'));
    // Exactly the permissions deploy/rbac.yaml grants: whatever it would refuse on a real cluster fails here.
    sim = await KubeSim.start({ historyWindow: 500, rules: shippedRbacRules(), serviceCIDRs: ['203.0.113.128/25', '2001:db8:cafe::/112'] });
    const kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    sampleCluster(sim);
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
    daemon = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig, config: {
      kubernetes: { kubeconfig, qps: QPS, burst: BURST, strictClass: true, lease: { durationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 2 } },
      pools: [
        { name: 'default', addresses: ['192.0.2.0/24'], avoidBuggyIPs: true },
        { name: 'tiny', addresses: ['198.51.100.7/32'], autoAssign: false },
        { name: 'v6', addresses: ['2001:db8:1b::/120'] },
      ],
    } });
    await eventually('lb1 holds the Lease', () => ((sim.get('coordination.k8s.io/v1', 'Lease', 'ipvs-lb-allocator', 'ipvs-lb') as { spec: { holderIdentity?: string } } | undefined)?.spec.holderIdentity === 'lb1' ? true : undefined));
  });
  after(async () => {
    const code = await daemon.stop('SIGKILL');
    if (process.env.IPVS_LB_TEST_LOGS) process.stderr.write(`--- lb1 (exit ${code})\n${daemon.log()}\n`);
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('strict class: serves its own class only, and never touches ingress another controller wrote', async () => {
    sim.create(service('classless'));
    sim.create(service('foreign', { cls: 'other.example/lb' }));
    sim.create(service('classless-foreign'));
    // Another implementation answers for these two.
    for (const [name, entry] of [['foreign', { ip: '203.0.113.200', ipMode: 'Proxy' }], ['classless-foreign', { hostname: 'lb.other.example' }]] as const) {
      sim.update({ ...(get(name) as unknown as Record<string, unknown>), status: { loadBalancer: { ingress: [entry] } } }, 'status');
    }
    const rvs = ['classless', 'foreign', 'classless-foreign'].map((n) => get(n).metadata.resourceVersion);
    sim.create(service('ours', { cls: CLASS }));
    assert.deepEqual(await allocated('ours'), ['192.0.2.1']);
    // A second Service of ours decided after the others were seen: by then they were passed over.
    sim.create(service('ours-2', { cls: CLASS }));
    assert.deepEqual(await allocated('ours-2'), ['192.0.2.2']);
    await eventOf('ours-2', 'IPAllocated');
    assert.deepEqual(['classless', 'foreign', 'classless-foreign'].map((n) => get(n).metadata.resourceVersion), rvs, 'not one write to them');
    assert.deepEqual(ingress('classless'), []);
    assert.deepEqual(ingress('foreign'), ['203.0.113.200']);
    assert.deepEqual(ingress('classless-foreign'), ['lb.other.example']);
    for (const n of ['classless', 'foreign', 'classless-foreign']) assert.deepEqual(eventsOf(n), [], `no Event on ${n}`);
    const ledger = (await daemon.api<{ items: { name: string }[] }>('/api/v1/allocations')).body.items.map((a) => a.name).sort();
    assert.deepEqual(ledger, ['ours', 'ours-2']);
  });

  it('a dual-stack Service gets one ingress entry per family, primary family first, each with ipMode VIP', async () => {
    sim.create({
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'dual', namespace: 'default' },
      spec: { type: 'LoadBalancer', loadBalancerClass: CLASS, ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'], ports: [{ port: 80 }] },
    });
    await eventually('both families', () => (ingress('dual').length === 2 ? true : undefined), 60_000);
    const [v6, v4] = get('dual').status!.loadBalancer!.ingress!;
    assert.match(`${v6!.ip} ${v6!.ipMode}`, /^2001:db8:1b::[0-9a-f]* VIP$/);
    assert.match(`${v4!.ip} ${v4!.ipMode}`, /^192\.0\.2\.\d+ VIP$/);
  });

  it('Events: AllocationFailed with its reason, InvalidAnnotation, SharingConflict; a bad annotation affects only its own Service', async () => {
    sim.create(service('bad-ips', { cls: CLASS, annotations: { 'ipvs-lb.io/load-balancer-ips': '192.0.2.10,not-an-ip' } }));
    sim.create(service('bad-scheduler', { cls: CLASS, annotations: { 'ipvs-lb.io/scheduler': 'fastest' } }));
    sim.create(service('no-such-pool', { cls: CLASS, annotations: { 'ipvs-lb.io/address-pool': 'nope' } }));
    sim.create(service('tiny-1', { cls: CLASS, annotations: { 'ipvs-lb.io/address-pool': 'tiny' } }));
    sim.create(service('share-a', { cls: CLASS, annotations: { 'ipvs-lb.io/allow-shared-ip': 'team-a', 'ipvs-lb.io/load-balancer-ips': '192.0.2.50' } }));
    sim.create(service('good', { cls: CLASS }));
    assert.deepEqual(await allocated('tiny-1'), ['198.51.100.7']);
    assert.deepEqual(await allocated('share-a'), ['192.0.2.50']);
    sim.create(service('tiny-2', { cls: CLASS, annotations: { 'ipvs-lb.io/address-pool': 'tiny' } }));
    sim.create(service('share-b', { cls: CLASS, annotations: { 'ipvs-lb.io/allow-shared-ip': 'team-b', 'ipvs-lb.io/load-balancer-ips': '192.0.2.50' }, port: 443 }));

    const invalid = await eventOf('bad-ips', 'InvalidAnnotation');
    assert.equal(invalid.type, 'Warning');
    assert.match(invalid.message, /ipvs-lb\.io\/load-balancer-ips has "not-an-ip", which is not an IP address \(got "192\.0\.2\.10,not-an-ip"\)/);
    assert.deepEqual(ingress('bad-ips'), [], 'nothing half-applied: not even the valid address of the list');
    // A data-plane annotation falls back to the default and says so.
    assert.equal((await allocated('bad-scheduler')).length, 1);
    assert.match((await eventOf('bad-scheduler', 'InvalidAnnotation')).message, /annotation ipvs-lb\.io\/scheduler must be one of .*\(got "fastest"\)/);
    const vs = (await daemon.api<{ virtualServices: { scheduler: string }[] }>('/api/v1/services/default/bad-scheduler')).body.virtualServices;
    assert.deepEqual(vs.map((v) => v.scheduler), ['mh']);
    assert.match((await eventOf('no-such-pool', 'AllocationFailed')).message, /^UnknownPool: /);
    assert.match((await eventOf('tiny-2', 'AllocationFailed')).message, /^PoolExhausted: /);
    const conflict = await eventOf('share-b', 'SharingConflict');
    assert.equal(conflict.type, 'Warning');
    assert.match(conflict.message, /^SharingConflict: .*192\.0\.2\.50/);
    for (const n of ['no-such-pool', 'tiny-2', 'share-b']) assert.deepEqual(ingress(n), [], n);
    // The good Service of the same burst was served as if nothing else happened.
    assert.equal((await allocated('good')).length, 1);
    assert.deepEqual(eventsOf('good').map((e) => e.reason), ['IPAllocated']);
    // A problem is an Event once, not once per pass.
    await eventually('another pass', () => (eventsOf('good').length === 1 ? true : undefined));
    assert.equal(eventsOf('bad-ips').filter((e) => e.reason === 'InvalidAnnotation').length, 1);
  });

  it('IPReleased when a Service stops being ours: only our entry leaves its ingress, another controller\'s stays', async () => {
    const ip = (await allocated('good'))[0]!;
    const svc = get('good');
    sim.update({ ...(svc as unknown as Record<string, unknown>), status: { loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }, { hostname: 'dns.other.example' }] } } }, 'status');
    sim.patch('v1', 'Service', 'good', 'default', { spec: { type: 'NodePort', loadBalancerClass: null } });
    const released = await eventOf('good', 'IPReleased');
    assert.match(released.message, new RegExp(`released ${ip.replace(/\./g, '\\.')}: the Service is no longer type LoadBalancer of class ${CLASS}`));
    await eventually('our entry removed', () => (ingress('good').join() === 'dns.other.example' ? true : undefined));
    const rows = (await daemon.api<{ items: { action: string; service: string; address: string }[] }>('/api/v1/events?limit=100')).body.items;
    assert.ok(rows.some((r) => r.action === 'release' && r.service === 'default/good' && r.address === ip));
  });

  it(`holds the client budget: at most burst + qps x t requests (qps ${QPS}, burst ${BURST}), every one counted`, async () => {
    // Idle first, so the bucket is full and the burst term is exactly the configured one.
    await new Promise((r) => setTimeout(r, (BURST / QPS) * 1000 + 500));
    const names = Array.from({ length: 12 }, (_, i) => `budget-${i}`);
    const c0 = sim.totalRequests();
    const t0 = performance.now();
    for (const n of names) sim.create(service(n, { cls: CLASS }));
    await eventually('every status and Event', () => (names.every((n) => ingress(n).length === 1 && eventsOf(n).length === 1) ? true : undefined), 120_000);
    const seconds = (performance.now() - t0) / 1000;
    const made = sim.totalRequests() - c0;
    // 12 status writes and 12 Events at least, plus Lease renewals.
    assert.ok(made >= 24, `${made} requests`);
    // Two requests may have had their token before t0 and arrived after it.
    assert.ok(made <= BURST + QPS * seconds + 2, `${made} requests in ${seconds.toFixed(1)} s exceed burst ${BURST} + qps ${QPS} x t`);
    // The daemon's own count is every request the simulator saw from it (it is the only client).
    const text = await (await fetch(`http://127.0.0.1:${daemon.port}/metrics`)).text();
    const before = sim.totalRequests();
    const counted = [...text.matchAll(/^ipvs_lb_kubernetes_requests_total\{priority="(\w+)"\} (\d+)/gm)].reduce((n, m) => n + Number(m[2]), 0);
    const after = sim.totalRequests();
    assert.ok(counted >= before - 2 && counted <= after + 2, `metric ${counted}, simulator ${before}..${after}`);
    assert.match(text, /ipvs_lb_kubernetes_requests_total\{priority="background"\} [1-9]/);
  });

  it('was refused nothing by the permissions deploy/rbac.yaml grants', () => {
    assert.doesNotMatch(daemon.log(), /Forbidden|\(403\)|"code":403/);
  });
});
