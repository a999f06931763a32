// The watcher's parts against the API simulator with the real client-node: the reflector (resume without a
// list, relist after 410, jittered backoff, Retry-After, periodic resync, silent connections, a failing
// handler), the Lease (one holder; a holder cut off from the API steps down before anyone can take over),
// the status writer (409 retried after a fresh read, other controllers' ingress kept) and the Event recorder
// (aggregation, bounded queue). A TCP relay that can be frozen stands for an API server that stopped answering.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { CoreV1Api, type CoreV1Event, type V1Service } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { KubeSim } from '../../lab/kube-sim/index.js';
import { waitFor } from '../../lab/kube-sim/testing.js';
import { Backoff } from '../../src/util/backoff.js';
import { TokenBucket } from '../../src/util/rate-limit.js';
import { makeKubeClients, requestTimeout, type KubeClients } from '../../src/watcher/client.js';
import { EventRecorder } from '../../src/watcher/events.js';
import { LeaderElector } from '../../src/watcher/lease.js';
import { isOurService } from '../../src/watcher/ours.js';
import { Reflector, type ChangeType } from '../../src/watcher/reflector.js';
import { StatusWriter } from '../../src/watcher/status.js';
import { shippedRbacRules } from '../support/rbac.js';
import { TcpProxy } from '../support/tcp-proxy.js';

/** client-node returns model class instances; compare their JSON. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x ?? null));
const K = { loadBalancerClass: 'ipvs-lb.io/external', strictClass: false };

function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { log, lines };
}

const svc = (name: string, extra: Record<string, string> = {}) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...extra },
});

describe('watcher parts against the API simulator', { timeout: 180_000 }, () => {
  let sim: KubeSim;
  let dir: string;
  let kubeconfig: string;
  let clients: KubeClients;
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-watcher-'));
    sim = await KubeSim.start({ bookmarkIntervalMs: 200, historyWindow: 50 });
    kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    clients = makeKubeClients({ kubeconfig, inCluster: false, qps: 1000, burst: 1000 });
    sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ipvs-lb' } });
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    sim.clearFaults();
    for (const s of sim.list('v1', 'Service', 'default')) if ((s.metadata as { name: string }).name !== 'kubernetes') sim.delete('v1', 'Service', (s.metadata as { name: string }).name, 'default');
  });
  after(async () => {
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function reflector(opts: { c?: KubeClients; backoff?: Backoff; resyncMs?: number; silenceLimitSeconds?: number; listTimeoutMs?: number; onChange?: (t: ChangeType, s: V1Service) => void } = {}) {
    const c = opts.c ?? clients;
    const { log, lines } = capturingLogger();
    const events: string[] = [];
    const r = new Reflector<V1Service>({
      kind: 'Service', kubeConfig: c.kubeConfig, path: '/api/v1/namespaces/default/services', limiter: c.limiter, log,
      list: ({ timeoutMs, signal, ...o }) => c.core.listNamespacedService({ namespace: 'default', ...o }, requestTimeout(timeoutMs, undefined, signal)),
      onChange: (t, s) => {
        opts.onChange?.(t, s);
        events.push(`${t} ${s.metadata?.name}`);
      },
      backoff: opts.backoff, resyncMs: opts.resyncMs, silenceLimitSeconds: opts.silenceLimitSeconds, listTimeoutMs: opts.listTimeoutMs, pageSize: 2,
    });
    r.start();
    cleanups.push(() => r.stop());
    const names = () => r.list().map((s) => s.metadata!.name!).filter((n) => n !== 'kubernetes').sort();
    return { r, events, lines, names };
  }

  it('lists in pages, follows changes, and resumes a dropped or reset watch without a new list', async () => {
    for (const n of ['a', 'b', 'c']) sim.create(svc(n));
    const { r, names, events } = reflector();
    await waitFor('synced', () => r.stats.synced);
    assert.deepEqual(names(), ['a', 'b', 'c']);
    sim.resetCounts();
    await waitFor('the watch open', () => sim.activeWatches === 1);
    assert.equal(sim.dropWatches(), 1);
    sim.create(svc('d'));
    await waitFor('d', () => names().includes('d'));
    await waitFor('the watch open again', () => sim.activeWatches === 1);
    assert.equal(sim.dropWatches({ abrupt: true }), 1);
    sim.delete('v1', 'Service', 'a', 'default');
    await waitFor('a gone', () => !names().includes('a'));
    assert.equal(sim.requestCounts()['list services'] ?? 0, 0, 'no relist after a drop or a reset');
    assert.ok(r.stats.watchRestarts + r.stats.errors >= 2, `both watches ended and were resumed: ${JSON.stringify(r.stats)} ${events.join(', ')}`);
    assert.deepEqual(events.filter((e) => ['a', 'd'].includes(e.split(' ')[1]!)), ['add a', 'add d', 'delete a']);
  });

  it('relists after 410 Gone and reports what it missed, deletions included, each once', async () => {
    for (const n of ['keep', 'drop']) sim.create(svc(n));
    const { r, names, events } = reflector();
    await waitFor('synced', () => r.stats.synced);
    await sim.goDown();
    sim.delete('v1', 'Service', 'drop', 'default');
    sim.create(svc('new'));
    sim.compact();
    await sim.comeUp();
    await waitFor('relisted', () => names().join() === 'keep,new', 20_000);
    assert.ok(r.stats.relists >= 2);
    const mine = events.filter((e) => !e.endsWith('kubernetes'));
    assert.deepEqual(mine.slice(0, 2).sort(), ['add drop', 'add keep']);
    assert.deepEqual(mine.slice(2), ['delete drop', 'add new']);
  });

  it('backs off with jitter after errors, at least as long as a 429 asks, and recovers', async () => {
    sim.create(svc('x'));
    sim.failNext(3, { status: 500, verbs: ['list'], resources: ['services'] });
    sim.failNext(1, { status: 429, retryAfterSeconds: 2, verbs: ['list'], resources: ['services'] });
    const { r, lines, names } = reflector({ backoff: new Backoff({ initialMs: 40, maxMs: 10_000, random: () => 0.5 }) });
    await waitFor('synced after the faults', () => r.stats.synced, 20_000);
    assert.deepEqual(names(), ['x']);
    const delays = lines.filter((l) => l.msg === 'list/watch failed; retrying').map((l) => l.retryInMs);
    // Full jitter at 0.5: 3/4 of the doubling cap; the 429 asked for 2 s, more than the backoff's 240 ms.
    assert.deepEqual(delays, [30, 60, 120, 2000]);
    assert.equal(r.stats.errors, 4);
  });

  it('resyncs periodically: relists on its own and tells the consumer nothing when nothing changed', async () => {
    for (const n of ['p', 'q']) sim.create(svc(n));
    const { r, events } = reflector({ resyncMs: 300 });
    await waitFor('synced', () => r.stats.synced);
    const before = events.length;
    sim.resetCounts();
    await waitFor('three resyncs', () => r.stats.resyncs >= 3, 20_000);
    assert.ok((sim.requestCounts()['list services'] ?? 0) >= 3, 'each resync is a list');
    assert.equal(events.length, before, `no change reported: ${events.slice(before).join(', ')}`);
    sim.create(svc('later'));
    await waitFor('a change still arrives', () => events.includes('add later'));
  });

  it('takes a silent connection for dead, and catches up once the server answers again', async () => {
    sim.create(svc('before'));
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
    cleanups.push(() => proxy.close());
    const c = makeKubeClients({ kubeconfig: await proxy.kubeconfigVia(kubeconfig, join(dir, 'via-proxy')), inCluster: false, qps: 1000, burst: 1000 });
    const { r, names, lines } = reflector({ c, silenceLimitSeconds: 1, backoff: new Backoff({ initialMs: 50, maxMs: 200 }) });
    await waitFor('synced', () => r.stats.synced);
    proxy.freeze();
    sim.create(svc('during'));
    await waitFor('the silence noticed', () => lines.some((l) => /watch silent for 1 s/.test(String(l.err))), 20_000);
    assert.equal(r.stats.connected, false);
    assert.deepEqual(names(), ['before'], 'the cache is kept while the server is silent');
    proxy.thaw();
    await waitFor('caught up', () => names().includes('during'), 20_000);
  });

  it('stops at once, also in the middle of a list the server never answers', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
    cleanups.push(() => proxy.close());
    const c = makeKubeClients({ kubeconfig: await proxy.kubeconfigVia(kubeconfig, join(dir, 'stop-proxy')), inCluster: false, qps: 1000, burst: 1000 });
    proxy.freeze();
    // A list timeout far beyond this test's own: stop() must cancel the request, not wait it out.
    const { r } = reflector({ c, listTimeoutMs: 3_600_000 });
    await waitFor('the list request open', () => proxy.connections > 0);
    await r.stop();
    assert.equal(r.stats.synced, false);
  });

  it('relists after a handler failed, so the consumer gets the change it missed, once', async () => {
    let failed = false;
    const seen: string[] = [];
    const { r } = reflector({
      backoff: new Backoff({ initialMs: 20, maxMs: 100 }),
      onChange: (t, s) => {
        if (s.metadata?.name === 'flaky' && !failed) {
          failed = true;
          throw new Error('consumer bug');
        }
        seen.push(`${t} ${s.metadata?.name}`);
      },
    });
    await waitFor('synced', () => r.stats.synced);
    sim.create(svc('flaky'));
    await waitFor('flaky delivered after the relist', () => seen.some((e) => e.endsWith(' flaky')));
    assert.equal(seen.filter((e) => e.endsWith(' flaky')).length, 1);
    assert.ok(r.stats.relists >= 2);
  });

  describe('the allocator Lease', () => {
    const elector = (identity: string, c: KubeClients, log: Logger, record: string[]) => {
      const e = new LeaderElector({
        api: c.coordination, namespace: 'ipvs-lb', name: 'watcher-test', identity, durationSeconds: 6, renewDeadlineSeconds: 2, retryPeriodSeconds: 1, limiter: c.limiter, log,
        onStartedLeading: () => record.push(`${identity} leads`), onStoppedLeading: () => record.push(`${identity} stops`),
      });
      cleanups.push(() => e.stop());
      return e;
    };

    it('has exactly one holder; a graceful stop releases it for the other at its next retry', async () => {
      const { log } = capturingLogger();
      const record: string[] = [];
      const a = elector('lb-a', clients, log, record);
      a.start();
      await waitFor('a leads', () => a.status.leader);
      const b = elector('lb-b', clients, log, record);
      b.start();
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(b.status.leader, false);
      assert.equal(b.status.holder, 'lb-a');
      await a.stop();
      const released = sim.get('coordination.k8s.io/v1', 'Lease', 'watcher-test', 'ipvs-lb') as { spec: { holderIdentity?: string } };
      assert.ok(released.spec.holderIdentity === undefined || released.spec.holderIdentity === 'lb-b', 'released (or already taken)');
      await waitFor('b leads', () => b.status.leader, 10_000);
      const lease = sim.get('coordination.k8s.io/v1', 'Lease', 'watcher-test', 'ipvs-lb') as { spec: { holderIdentity: string; leaseTransitions: number } };
      assert.equal(lease.spec.holderIdentity, 'lb-b');
      assert.equal(lease.spec.leaseTransitions, b.status.term);
      assert.deepEqual(record, ['lb-a leads', 'lb-a stops', 'lb-b leads']);
      await b.stop();
      sim.delete('coordination.k8s.io/v1', 'Lease', 'watcher-test', 'ipvs-lb');
    });

    it('a holder that wakes from a freeze past its renew deadline does not decide as leader before its timers run', async () => {
      const { log } = capturingLogger();
      const record: string[] = [];
      let frozenMs = 0;
      const a = new LeaderElector({
        api: clients.coordination, namespace: 'ipvs-lb', name: 'watcher-freeze', identity: 'lb-a', durationSeconds: 6, renewDeadlineSeconds: 2, retryPeriodSeconds: 1, limiter: clients.limiter, log,
        onStartedLeading: () => record.push('leads'), onStoppedLeading: () => record.push('stops'), now: () => Date.now() + frozenMs,
      });
      cleanups.push(() => a.stop());
      a.start();
      await waitFor('a leads', () => a.status.leader);
      assert.equal(a.leadsNow(), true);
      // The clock jumps as after a stalled VM: the step-down timer has not run yet, so status still says leader,
      // and the work queued before the freeze runs first. It must not count as the allocator.
      frozenMs = 5000;
      assert.equal(a.status.leader, true);
      assert.equal(a.leadsNow(), false);
      frozenMs = 0;
      await a.stop();
      sim.delete('coordination.k8s.io/v1', 'Lease', 'watcher-freeze', 'ipvs-lb');
    });

    it('a holder cut off from the API steps down before the other can take over, and stays a follower after', async () => {
      const proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
      cleanups.push(() => proxy.close());
      const viaProxy = makeKubeClients({ kubeconfig: await proxy.kubeconfigVia(kubeconfig, join(dir, 'lease-proxy')), inCluster: false, qps: 1000, burst: 1000 });
      const { log, lines } = capturingLogger();
      const record: string[] = [];
      const a = elector('lb-a', viaProxy, log, record);
      a.start();
      await waitFor('a leads', () => a.status.leader);
      const b = elector('lb-b', clients, log, record);
      b.start();
      let both = 0;
      const sampler = setInterval(() => { if (a.status.leader && b.status.leader) both++; }, 20);
      cleanups.push(() => clearInterval(sampler));
      await new Promise((r) => setTimeout(r, 1500));
      proxy.freeze();
      await waitFor('b takes over', () => b.status.leader, 20_000);
      assert.deepEqual(record, ['lb-a leads', 'lb-a stops', 'lb-b leads'], 'a stepped down first');
      assert.equal(both, 0, 'never two holders at once');
      assert.ok(lines.some((l) => l.msg === 'lease: could not renew within the renew deadline; stepping down'));
      proxy.thaw();
      await waitFor('a sees b', () => a.status.holder === 'lb-b', 10_000);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(a.status.leader, false);
      assert.equal(both, 0);
      sim.delete('coordination.k8s.io/v1', 'Lease', 'watcher-test', 'ipvs-lb');
    });
  });

  describe('status writes (with only the permissions deploy/rbac.yaml grants)', () => {
    before(() => sim.setRules(shippedRbacRules()));
    after(() => sim.setRules([{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }]));
    const writer = () => new StatusWriter({ api: clients.core, limiter: clients.limiter, stillOurs: (s) => isOurService(s, K) });
    // The test's own changes go through the simulator directly, not through the restricted user.
    const read = (name: string) => sim.get('v1', 'Service', name, 'default') as V1Service;

    it('retries a 409 after a fresh read, keeping the change that caused it', async () => {
      const stale = sim.create(svc('conflict')) as V1Service;
      sim.patch('v1', 'Service', 'conflict', 'default', { metadata: { labels: { team: 'a' } } });
      const w = writer();
      assert.equal(await w.set(stale, ['192.0.2.10']), 'written');
      assert.equal(w.conflicts, 1);
      const now = read('conflict');
      assert.deepEqual(plain(now.status?.loadBalancer?.ingress), [{ ip: '192.0.2.10', ipMode: 'VIP' }]);
      assert.deepEqual(now.metadata?.labels, { team: 'a' });
      assert.equal(await w.set(now, ['192.0.2.10']), 'unchanged', 'no write when nothing changes');
    });

    it('writes nothing when the fresh read shows the Service is no longer ours, or gone', async () => {
      const stale = sim.create(svc('turned')) as V1Service;
      sim.patch('v1', 'Service', 'turned', 'default', { spec: { type: 'ClusterIP' } });
      const w = writer();
      assert.equal(await w.set(stale, ['192.0.2.11']), 'not-ours');
      assert.equal((read('turned').status?.loadBalancer?.ingress ?? []).length, 0);
      const gone = sim.create(svc('gone')) as V1Service;
      sim.delete('v1', 'Service', 'gone', 'default');
      assert.equal(await w.set(gone, ['192.0.2.12']), 'gone');
    });

    it('takes only its own addresses out of an ingress that another controller also wrote', async () => {
      const s = sim.create(svc('mixed')) as V1Service;
      const withBoth = sim.update({ ...(s as Record<string, unknown>), status: { loadBalancer: { ingress: [{ ip: '192.0.2.13', ipMode: 'VIP' }, { hostname: 'lb.other.example' }, { ip: '198.51.100.99', ipMode: 'Proxy' }] } } } as never, 'status') as V1Service;
      assert.equal(await writer().clear(withBoth, ['192.0.2.13']), 'written');
      assert.deepEqual(plain(read('mixed').status?.loadBalancer?.ingress), [{ hostname: 'lb.other.example' }, { ip: '198.51.100.99', ipMode: 'Proxy' }]);
    });
  });

  describe('Events', () => {
    const list = async (name: string) => (await sim.kubeConfig().makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${name}` })).items as CoreV1Event[];

    it('aggregates a repeated Event into a count, and keeps distinct messages apart', async () => {
      const s = sim.create(svc('evented')) as V1Service;
      const rec = new EventRecorder({ api: clients.core, limiter: clients.limiter, host: 'lb-test', log: capturingLogger().log });
      await rec.record(s, 'AllocationFailed', 'PoolExhausted: every matching pool is full');
      await rec.record(s, 'AllocationFailed', 'PoolExhausted: every matching pool is full');
      await rec.record(s, 'IPAllocated', 'allocated 192.0.2.20 from pool default');
      const events = await list('evented');
      assert.equal(events.length, 2);
      const failed = events.find((e) => e.reason === 'AllocationFailed')!;
      assert.deepEqual([failed.count, failed.type, failed.source?.component, failed.source?.host, failed.involvedObject.uid], [2, 'Warning', 'ipvs-lb', 'lb-test', s.metadata?.uid]);
      assert.equal(events.find((e) => e.reason === 'IPAllocated')!.type, 'Normal');
    });

    it('waits behind every other request for its token, and drops (counted) beyond its queue bound', async () => {
      const s = sim.create(svc('queued')) as V1Service;
      const limiter = new TokenBucket(20, 1);
      const rec = new EventRecorder({ api: clients.core, limiter, host: 'lb-test', log: capturingLogger().log, maxQueued: 3 });
      await limiter.take();
      // Two senders hold one Event each while they wait for a token; three more may queue; the rest is dropped.
      const sent = Array.from({ length: 7 }, (_, i) => rec.record(s, 'IPAllocated', `event ${i}`));
      assert.equal(rec.waiting, 3);
      assert.equal(rec.dropped, 2);
      // A status write asked after the Events still goes first.
      let statusAt = 0;
      const status = limiter.take('normal').then(() => (statusAt = rec.recorded));
      await Promise.all([...sent, status]);
      assert.equal(statusAt, 0, 'the status write got its token before any Event');
      assert.deepEqual((await list('queued')).map((e) => e.message).sort(), ['event 0', 'event 1', 'event 2', 'event 3', 'event 4']);
    });
  });
});
