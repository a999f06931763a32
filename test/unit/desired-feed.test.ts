// The daemon's incremental path from a cluster change to the data plane: which changes recompute one Service
// and which rebuild everything, the data plane's bookkeeping of VIPs and forwarding methods per patch, the
// EndpointSlice index, and per-Service problem Events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { parseConfig } from '../../src/config/schema.js';
import { DesiredFeed } from '../../src/daemon/desired-feed.js';
import { DesiredIndex } from '../../src/daemon/desired-index.js';
import type { AllocatedAddress, ModelInputs } from '../../src/model/desired.js';
import type { DesiredState, DesiredVirtualService, ModelProblem } from '../../src/model/types.js';
import { createLogger } from '../../src/util/log.js';
import { ProblemEvents } from '../../src/watcher/problems.js';
import { SliceIndex } from '../../src/watcher/slice-index.js';

const parsed = parseConfig({ interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }] });
assert.ok(parsed.ok);
const config = parsed.config;

const node = (name: string, ip: string): V1Node => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True' }] } });
const service = (name: string, port: number, annotations?: Record<string, string>): V1Service => ({
  metadata: { name, namespace: 'default', uid: `uid-${name}`, annotations, creationTimestamp: new Date('2026-11-01T00:00:00Z') },
  spec: { type: 'LoadBalancer', ports: [{ port, protocol: 'TCP', nodePort: 30000 + port }] },
});

function world() {
  const services = new Map<string, V1Service>();
  const allocations = new Map<string, AllocatedAddress[]>();
  const nodes = [node('node-a', '198.51.100.21'), node('node-b', '198.51.100.22')];
  const calls: Array<{ kind: 'update'; keys: string[] } | { kind: 'patch'; set: string[]; remove: string[] }> = [];
  const problemCalls: Array<{ all?: readonly ModelProblem[]; some?: ReadonlyMap<string, readonly ModelProblem[]> }> = [];
  let candidatesSet = 0;
  const feed = new DesiredFeed({
    inputs: (): ModelInputs => ({ services: [...services.values()], nodes, endpointSlices: [], allocations, config, now: Date.now() }),
    source: { service: (id) => services.get(id.slice(id.indexOf('/') + 1)), slices: () => [], allocations: (uid) => allocations.get(uid) },
    health: {
      setCandidates: () => void candidatesSet++,
      apply: (c: DesiredState) => c,
      patchCandidates: (set: readonly DesiredVirtualService[]) => [...set],
    },
    dataPlane: {
      update: (d) => void calls.push({ kind: 'update', keys: d.virtualServices.map((v) => v.key) }),
      patch: (p) => void calls.push({ kind: 'patch', set: p.set.map((v) => v.key), remove: [...p.remove] }),
    },
    onProblems: (all, some) => void problemCalls.push({ all, some }),
    coalesceMs: () => 5,
    log: createLogger('silent'),
  });
  const add = (name: string, port: number, address: string, annotations?: Record<string, string>) => {
    services.set(name, service(name, port, annotations));
    allocations.set(`uid-${name}`, [{ address, pool: 'default' }]);
  };
  return { feed, services, allocations, nodes, calls, problemCalls, add, candidatesSet: () => candidatesSet };
}

const settle = () => new Promise((r) => setTimeout(r, 30));

describe('desired-state feed', () => {
  it('sends nothing before start, a whole state at start, then a patch with only what a Service change touched', async () => {
    const w = world();
    w.add('web', 80, '192.0.2.1');
    w.feed.servicesChanged(['default/web']);
    w.feed.everything();
    await settle();
    assert.deepEqual(w.calls, [], 'nothing before start (the cluster view may be incomplete)');
    w.feed.start();
    assert.deepEqual(w.calls, [{ kind: 'update', keys: ['TCP/192.0.2.1:80'] }]);
    try {
      w.add('api', 443, '192.0.2.2');
      w.feed.servicesChanged(['default/api']);
      w.feed.servicesChanged(['default/api']);
      await settle();
      assert.deepEqual(w.calls[1], { kind: 'patch', set: ['TCP/192.0.2.2:443'], remove: [] }, 'one patch for a burst');
      assert.equal(w.calls.length, 2);
      // A Service deleted: its key is removed, nothing else is sent.
      w.services.delete('web');
      w.feed.servicesChanged(['default/web']);
      await settle();
      assert.deepEqual(w.calls[2], { kind: 'patch', set: [], remove: ['TCP/192.0.2.1:80'] });
      // A change that does not alter the Service's virtual services sends nothing to the data plane.
      w.feed.servicesChanged(['default/nobody']);
      await settle();
      assert.equal(w.calls.length, 3);
      assert.equal(w.feed.stats.rebuilds, 1);
    } finally {
      w.feed.stop();
    }
  });

  it('rebuilds the whole state for a change every Service depends on, taking pending Service changes with it', async () => {
    const w = world();
    w.add('web', 80, '192.0.2.1');
    w.feed.start();
    try {
      w.add('api', 443, '192.0.2.2');
      w.feed.servicesChanged(['default/api']);
      w.nodes.push(node('node-c', '198.51.100.23'));
      w.feed.everything();
      await settle();
      assert.equal(w.calls.length, 2);
      assert.deepEqual(w.calls[1], { kind: 'update', keys: ['TCP/192.0.2.1:80', 'TCP/192.0.2.2:443'] });
      assert.equal(w.candidatesSet(), 2, 'the probe plan follows the rebuild');
      assert.equal(w.feed.stats.rebuilds, 2);
    } finally {
      w.feed.stop();
    }
  });

  it('reports a Service\'s problems when it changes, and a clash\'s problem goes to the newer Service', async () => {
    const w = world();
    w.add('web', 80, '192.0.2.1');
    w.feed.start();
    try {
      assert.deepEqual(w.problemCalls[0]!.all, []);
      w.add('bad', 81, '192.0.2.1', { 'ipvs-lb.io/scheduler': 'fastest' });
      w.services.get('bad')!.metadata!.creationTimestamp = new Date('2026-11-02T00:00:00Z');
      w.feed.servicesChanged(['default/bad']);
      await settle();
      const some = w.problemCalls[1]!.some!;
      assert.match(some.get('default/bad')![0]!.message, /ipvs-lb\.io\/scheduler.*"fastest"/);
      w.add('late', 80, '192.0.2.1');
      w.services.get('late')!.metadata!.creationTimestamp = new Date('2026-11-03T00:00:00Z');
      w.feed.servicesChanged(['default/late']);
      await settle();
      assert.deepEqual(w.problemCalls[2]!.some!.get('default/late')!.map((p) => p.message), ['TCP/192.0.2.1:80 is already served for default/web']);
      assert.equal(w.calls.length, 2, 'the losing Service sends nothing to the data plane');
    } finally {
      w.feed.stop();
    }
  });
});

const entry = (key: string, vip: string, forwarding: 'dr' | 'nat', group?: string): DesiredVirtualService => ({
  key, vip, family: 4, protocol: 'TCP', port: 80, scheduler: 'rr', schedulerFlags: [], persistenceTimeoutSeconds: undefined, forwarding,
  service: 'd/x', serviceUid: 'u', pool: 'default', vrrpGroup: group, realServers: [],
});

describe('the data plane\'s index of the desired state', () => {
  it('keeps VIPs per group and forwarding methods per patch, and says when binding must follow', () => {
    const idx = new DesiredIndex((v) => v.vrrpGroup ?? '');
    assert.deepEqual(idx.replace([entry('TCP/192.0.2.1:80', '192.0.2.1', 'dr', 'g1')]), { vipsChanged: true, newForwarding: true });
    // A second port on the same VIP: no new VIP.
    assert.deepEqual(idx.patch({ set: [entry('TCP/192.0.2.1:443', '192.0.2.1', 'dr', 'g1')], remove: [] }), { vipsChanged: false, newForwarding: false });
    assert.deepEqual(idx.patch({ set: [entry('TCP/192.0.2.2:80', '192.0.2.2', 'nat', 'g2')], remove: [] }), { vipsChanged: true, newForwarding: true });
    assert.deepEqual(idx.vipsOf('g1'), ['192.0.2.1']);
    assert.deepEqual(idx.vipsOf('g2'), ['192.0.2.2']);
    // One of two ports goes: the VIP stays.
    assert.deepEqual(idx.patch({ set: [], remove: ['TCP/192.0.2.1:80'] }), { vipsChanged: false, newForwarding: false });
    assert.ok(idx.vips().has('192.0.2.1'));
    // The last goes: the VIP goes, and NAT is no longer in use.
    assert.deepEqual(idx.patch({ set: [], remove: ['TCP/192.0.2.1:443', 'TCP/192.0.2.2:80'] }).vipsChanged, true);
    assert.ok(!idx.vips().has('192.0.2.1'));
    assert.deepEqual([...idx.forwardings()], []);
    // An entry moved to another group with the same VIP: binding must follow.
    idx.patch({ set: [entry('TCP/192.0.2.3:80', '192.0.2.3', 'dr', 'g1')], remove: [] });
    assert.equal(idx.patch({ set: [entry('TCP/192.0.2.3:80', '192.0.2.3', 'dr', 'g2')], remove: [] }).vipsChanged, true);
    assert.deepEqual(idx.vipsOf('g1'), []);
    assert.deepEqual(idx.list().map((v) => v.key), ['TCP/192.0.2.3:80']);
  });
});

describe('EndpointSlices by Service', () => {
  const slice = (name: string, svc: string | undefined): V1EndpointSlice => ({ addressType: 'IPv4', metadata: { name, namespace: 'ns', labels: svc ? { 'kubernetes.io/service-name': svc } : {} }, endpoints: [] });
  it('follows adds, relabels and deletes, and names every Service a change concerns', () => {
    const idx = new SliceIndex();
    assert.deepEqual(idx.note('add', slice('a-1', 'a'), undefined), ['ns/a']);
    assert.deepEqual(idx.note('add', slice('a-2', 'a'), undefined), ['ns/a']);
    assert.equal(idx.of('ns/a').length, 2);
    // Relabelled to another Service: both are concerned.
    assert.deepEqual(idx.note('update', slice('a-2', 'b'), slice('a-2', 'a')).sort(), ['ns/a', 'ns/b']);
    assert.deepEqual(idx.of('ns/a').map((s) => s.metadata!.name), ['a-1']);
    assert.deepEqual(idx.of('ns/b').map((s) => s.metadata!.name), ['a-2']);
    assert.deepEqual(idx.note('delete', slice('a-1', 'a'), slice('a-1', 'a')), ['ns/a']);
    assert.deepEqual(idx.of('ns/a'), []);
    assert.deepEqual(idx.note('add', slice('orphan', undefined), undefined), []);
  });
});

describe('per-Service problem Events', () => {
  it('updateFor looks at the named Services only: others keep their reported problems', () => {
    const recorded: string[] = [];
    const p = new ProblemEvents({ events: { record: async (s, reason) => void recorded.push(`${s.metadata?.name} ${reason}`) }, service: (_ns, name) => ({ metadata: { name } }), isLeader: () => true });
    const web: ModelProblem = { service: 'd/web', reason: 'InvalidAnnotation', message: 'x' };
    const api: ModelProblem = { service: 'd/api', reason: 'PortConflict', message: 'y' };
    p.update([web, api]);
    assert.equal(recorded.length, 2);
    // web's problem goes; api is not named, so its problem is still known and not recorded again.
    p.updateFor(new Map([['d/web', []]]));
    p.update([web, api]);
    assert.deepEqual(recorded, ['web InvalidAnnotation', 'api PortConflict', 'web InvalidAnnotation']);
    p.updateFor(new Map([['d/api', [api]]]));
    assert.equal(recorded.length, 3);
  });
});
