// The pure parts of the Kubernetes integration: the client-side rate limit (QPS, burst, priorities), the
// jittered backoff, which Services are ours (strict class mode included), what the caches keep of each
// object, the ingress a status write asks for, and the once-per-problem Events of the data plane.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import fc from 'fast-check';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { Backoff } from '../../src/util/backoff.js';
import { TokenBucket, type Priority } from '../../src/util/rate-limit.js';
import { trimEndpointSlice, trimNode, trimService } from '../../src/watcher/cluster.js';
import { isOurService } from '../../src/watcher/ours.js';
import { ProblemEvents } from '../../src/watcher/problems.js';
import { desiredIngress, ingressEquals } from '../../src/watcher/status.js';

describe('TokenBucket (client QPS and burst)', () => {
  let now = 0;
  beforeEach(() => {
    now = 0;
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => mock.timers.reset());
  /** Moves the clock 1 ms at a time, so every timer sees the time it was due at. */
  const advance = async (ms: number) => {
    for (let i = 0; i < ms; i++) {
      now += 1;
      mock.timers.tick(1);
      await Promise.resolve();
    }
  };

  it('hands out the burst at once, then one token every 1/qps seconds', async () => {
    const b = new TokenBucket(10, 5, () => now);
    let granted = 0;
    for (let i = 0; i < 8; i++) void b.take().then(() => granted++);
    await Promise.resolve();
    assert.equal(granted, 5, 'the burst');
    await advance(99);
    assert.equal(granted, 5, 'nothing before 100 ms at 10 QPS');
    await advance(1);
    assert.equal(granted, 6);
    await advance(200);
    assert.equal(granted, 8);
    assert.equal(b.requests, 8);
    assert.equal(b.waiting, 0);
  });

  it('never grants more than burst + qps x t over any schedule, and grants a token every 1/qps while requests wait (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 1, max: 200, noNaN: true }), fc.integer({ min: 1, max: 50 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 12 }),
        async (qps, burst, schedule) => {
          now = 0;
          mock.timers.reset();
          mock.timers.enable({ apis: ['setTimeout'] });
          const b = new TokenBucket(qps, burst, () => now);
          let granted = 0;
          let asked = 0;
          for (const [gapMs, n] of schedule) {
            await advance(gapMs);
            for (let i = 0; i < n; i++) {
              asked++;
              void b.take().then(() => granted++);
            }
            await Promise.resolve();
            // The budget holds at every moment.
            assert.ok(granted <= burst + (qps * now) / 1000 + 1e-9, `granted ${granted} by ${now} ms at qps ${qps} burst ${burst}`);
          }
          // And it is used: while requests wait, every 1/qps brings one more.
          for (let round = 0; round < 3 && granted < asked; round++) {
            const before = granted;
            await advance(Math.ceil(1000 / qps) + 1);
            assert.ok(granted > before, `no token for ${Math.ceil(1000 / qps) + 1} ms with ${asked - granted} waiting`);
            assert.ok(granted <= burst + (qps * now) / 1000 + 1e-9);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('serves waiters by priority (Lease, then work, then Events), in arrival order within one', async () => {
    const b = new TokenBucket(1000, 1, () => now);
    await b.take();
    const order: string[] = [];
    const ask = (p: Priority, tag: string) => void b.take(p).then(() => order.push(tag));
    ask('background', 'event-1');
    ask('normal', 'status-1');
    ask('background', 'event-2');
    ask('normal', 'status-2');
    ask('critical', 'lease');
    assert.deepEqual([b.waitingAt('critical'), b.waitingAt('normal'), b.waitingAt('background')], [1, 2, 2]);
    await advance(10);
    assert.deepEqual(order, ['lease', 'status-1', 'status-2', 'event-1', 'event-2']);
    assert.deepEqual(b.granted, { critical: 1, normal: 3, background: 2 });
  });

  it('refuses a budget that could never grant anything', () => {
    assert.throws(() => new TokenBucket(0, 10), /qps must be > 0 and burst >= 1 \(got 0, 10\)/);
    assert.throws(() => new TokenBucket(5, 0), /got 5, 0/);
  });
});

describe('Backoff (full jitter)', () => {
  it('doubles up to the cap, jitters within [cap/2, cap], and starts over after reset', () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => lo.next()), [50, 100, 200, 400, 500, 500]);
    const hi = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepEqual([1, 2, 3, 4, 5].map(() => hi.next()), [100, 200, 400, 800, 1000]);
    hi.reset();
    assert.equal(hi.next(), 100);
  });

  it('spreads hosts that fail together (property: never zero, never above the cap)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 1, max: 30 }), (initialMs, maxMs, n) => {
      const b = new Backoff({ initialMs, maxMs });
      for (let i = 0; i < n; i++) {
        const d = b.next();
        const cap = Math.min(maxMs, initialMs * 2 ** i);
        assert.ok(d >= Math.floor(cap / 2) && d <= cap && d > 0, `${d} outside [${cap / 2}, ${cap}]`);
      }
    }));
  });
});

describe('which Services are ours', () => {
  const svc = (type: string, cls?: string | null, deleting = false): V1Service => ({
    metadata: { name: 's', namespace: 'd', uid: 'u', ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { type, ...(cls === undefined ? {} : { loadBalancerClass: cls as string }) },
  });
  const k = { loadBalancerClass: 'ipvs-lb.io/external', strictClass: false };
  const strict = { ...k, strictClass: true };

  it('serves LoadBalancers of our class, and class-less ones unless strict', () => {
    assert.equal(isOurService(svc('LoadBalancer', 'ipvs-lb.io/external'), k), true);
    assert.equal(isOurService(svc('LoadBalancer', 'ipvs-lb.io/external'), strict), true);
    assert.equal(isOurService(svc('LoadBalancer'), k), true);
    assert.equal(isOurService(svc('LoadBalancer', ''), k), true);
    assert.equal(isOurService(svc('LoadBalancer'), strict), false, 'strict: class-less Services belong to another implementation');
    assert.equal(isOurService(svc('LoadBalancer', ''), strict), false);
    assert.equal(isOurService(svc('LoadBalancer', null), strict), false);
  });

  it('leaves other classes, other types and Services being deleted alone', () => {
    assert.equal(isOurService(svc('LoadBalancer', 'metallb.io/metallb'), k), false);
    assert.equal(isOurService(svc('LoadBalancer', 'ipvs-lb.io/internal'), k), false);
    for (const t of ['ClusterIP', 'NodePort', 'ExternalName']) assert.equal(isOurService(svc(t), k), false, t);
    assert.equal(isOurService(svc('LoadBalancer', undefined, true), k), false);
    assert.equal(isOurService({ metadata: { name: 'x' } }, k), false);
  });
});

describe('what the caches keep', () => {
  it('Services lose managedFields and kubectl\'s last-applied copy, nothing the daemon reads', () => {
    const s: V1Service = {
      metadata: {
        name: 'web', namespace: 'd', uid: 'u', resourceVersion: '7', labels: { app: 'web' },
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"manifest"}', 'ipvs-lb.io/scheduler': 'rr' },
        managedFields: [{ manager: 'kubectl' }],
      },
      spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'VIP' }] } },
    };
    const t = trimService(structuredClone(s));
    assert.deepEqual(t.metadata?.annotations, { 'ipvs-lb.io/scheduler': 'rr' });
    assert.equal(t.metadata?.managedFields, undefined);
    assert.deepEqual([t.spec, t.status, t.metadata?.labels, t.metadata?.uid, t.metadata?.resourceVersion], [s.spec, s.status, s.metadata?.labels, 'u', '7']);
  });

  it('Nodes keep name, labels, addresses and Ready without heartbeat times, so a heartbeat is no change', () => {
    const node = (heartbeat: string, rv: string): V1Node => ({
      metadata: { name: 'n1', labels: { zone: 'a' }, resourceVersion: rv, annotations: { big: 'x'.repeat(1000) } },
      spec: { podCIDR: '10.0.0.0/24' },
      status: {
        addresses: [{ type: 'InternalIP', address: '198.51.100.11' }],
        conditions: [
          { type: 'MemoryPressure', status: 'False' },
          { type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: new Date(heartbeat), lastTransitionTime: new Date('2026-01-01T00:00:00Z') },
        ],
        images: [{ names: ['registry/image'], sizeBytes: 1 }],
      },
    });
    const a = trimNode(node('2026-01-01T00:01:00Z', '1'));
    const b = trimNode(node('2026-01-01T00:02:00Z', '2'));
    assert.deepEqual(a.status?.conditions, [{ type: 'Ready', status: 'True', lastTransitionTime: new Date('2026-01-01T00:00:00Z') }]);
    assert.deepEqual(a.status?.addresses, [{ type: 'InternalIP', address: '198.51.100.11' }]);
    assert.equal(a.spec, undefined);
    assert.deepEqual({ ...a, metadata: { ...a.metadata, resourceVersion: '' } }, { ...b, metadata: { ...b.metadata, resourceVersion: '' } });
  });

  it('EndpointSlices keep the Service label, node names, addresses and conditions', () => {
    const s: V1EndpointSlice = {
      addressType: 'IPv4',
      metadata: { name: 'web-abc', namespace: 'd', labels: { 'kubernetes.io/service-name': 'web' }, resourceVersion: '3', ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u' }] },
      endpoints: [{ addresses: ['203.0.113.5'], nodeName: 'n1', conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-1' }, zone: 'a' }],
      ports: [{ port: 80 }],
    };
    assert.deepEqual(trimEndpointSlice(s), {
      addressType: 'IPv4',
      metadata: { name: 'web-abc', namespace: 'd', labels: { 'kubernetes.io/service-name': 'web' }, resourceVersion: '3' },
      endpoints: [{ addresses: ['203.0.113.5'], nodeName: 'n1', conditions: { ready: true } }],
    });
  });
});

describe('status ingress', () => {
  it('is one entry per address with ipMode VIP, and compares ip, hostname, ipMode and ports', () => {
    assert.deepEqual(desiredIngress(['192.0.2.1', '2001:db8::1']), [{ ip: '192.0.2.1', ipMode: 'VIP' }, { ip: '2001:db8::1', ipMode: 'VIP' }]);
    assert.equal(ingressEquals([{ ip: '192.0.2.1', ipMode: 'VIP' }], desiredIngress(['192.0.2.1'])), true);
    assert.equal(ingressEquals([{ ip: '192.0.2.1' }], desiredIngress(['192.0.2.1'])), false, 'ipMode missing');
    assert.equal(ingressEquals([{ ip: '192.0.2.1', ipMode: 'Proxy' }], desiredIngress(['192.0.2.1'])), false);
    assert.equal(ingressEquals(undefined, []), true);
    assert.equal(ingressEquals([{ hostname: 'lb.example' }], []), false);
  });
});

describe('data-plane problems as Events', () => {
  const svc = (name: string): V1Service => ({ metadata: { name, namespace: 'd', uid: `uid-${name}` } });
  function setup(leader: { v: boolean }) {
    const recorded: string[] = [];
    const p = new ProblemEvents({
      events: { record: async (s, reason, message) => void recorded.push(`${s.metadata?.name} ${reason} ${message}`) },
      service: (_ns, name) => (name === 'gone' ? undefined : svc(name)),
      isLeader: () => leader.v,
    });
    return { p, recorded };
  }
  const bad = { service: 'd/web', reason: 'InvalidAnnotation' as const, message: 'annotation ipvs-lb.io/scheduler must be one of rr, ... (got "fastest")' };

  it('records a problem once while it lasts, and again after it went away and came back', () => {
    const { p, recorded } = setup({ v: true });
    p.update([bad]);
    p.update([bad]);
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0], `web InvalidAnnotation ${bad.message}`);
    p.update([]);
    p.update([bad]);
    assert.equal(recorded.length, 2);
    p.update([bad, { service: 'd/api', reason: 'PortConflict', message: 'TCP/[192.0.2.1]:80 is already served for d/web' }, { service: 'd/gone', reason: 'NoBackendFamily', message: 'x' }]);
    assert.deepEqual(recorded.slice(2), ['api PortConflict TCP/[192.0.2.1]:80 is already served for d/web']);
  });

  it('records nothing on a follower, and reports what is still wrong once it becomes the allocator', () => {
    const leader = { v: false };
    const { p, recorded } = setup(leader);
    p.update([bad]);
    assert.equal(recorded.length, 0);
    leader.v = true;
    p.update([bad]);
    assert.equal(recorded.length, 1);
  });

  it('reports, when it starts to lead, what it computed as a follower and is still wrong, and nothing gone since', () => {
    const leader = { v: false };
    const { p, recorded } = setup(leader);
    const conflict = { service: 'd/api', reason: 'PortConflict' as const, message: 'TCP/[192.0.2.1]:80 is already served for d/web' };
    const family = { service: 'd/db', reason: 'NoBackendFamily' as const, message: 'no node has an IPv6 address' };
    p.update([bad, conflict]);
    p.updateFor(new Map([['d/db', [family]], ['d/api', []]]));
    assert.equal(recorded.length, 0);
    leader.v = true;
    p.reportPending();
    assert.deepEqual(recorded.sort(), [`db NoBackendFamily ${family.message}`, `web InvalidAnnotation ${bad.message}`]);
    p.reportPending();
    p.update([bad, family]);
    assert.equal(recorded.length, 2);
  });
});
