// DesiredModel keeps the desired state between changes and recomputes only the Services that changed. Its
// contract: after any sequence of per-Service changes, state() is exactly desiredState() of the same inputs
// (the whole computation, the specification), and each update's delta turns the previous state into the new
// one. The world is small on purpose, so that clashes (two Services on one VIP and port), shared VIPs, ties
// in creation time, Local policies with changing slices, bad annotations and re-created Services are common.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/schema.js';
import { desiredState, type AllocatedAddress, type ModelInputs } from '../../src/model/desired.js';
import { DesiredModel } from '../../src/model/incremental.js';
import type { ModelProblem } from '../../src/model/types.js';
import { fuzzParams } from '../support/fuzz.js';

const parsed = parseConfig({
  interface: 'eth0',
  vrrp: { enabled: false },
  pools: [
    { name: 'default', addresses: ['192.0.2.0/24'] },
    { name: 'v6', addresses: ['2001:db8:5::/64'] },
    { name: 'natpool', addresses: ['203.0.113.0/28'], forwarding: 'nat', scheduler: 'wrr' },
  ],
  backends: { notReadyGraceSeconds: 60, weightByEndpoints: true },
});
assert.ok(parsed.ok);
const config = parsed.config;
const NOW = Date.parse('2026-11-22T10:00:00Z');

const node = (name: string, ip: string, ip6: string | undefined, ready = true, since = '2026-01-01T00:00:00Z'): V1Node => ({
  metadata: { name, labels: {} },
  status: {
    addresses: [{ type: 'InternalIP', address: ip }, ...(ip6 ? [{ type: 'InternalIP', address: ip6 }] : [])],
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date(since) }],
  },
});
// One IPv6-less node, one NotReady within its grace period.
const nodes = [
  node('node-a', '198.51.100.21', '2001:db8:1::21'),
  node('node-b', '198.51.100.22', undefined),
  node('node-c', '198.51.100.23', '2001:db8:1::23', false, new Date(NOW - 20_000).toISOString()),
];

const NAMES = ['s0', 's1', 's2', 's3', 's4'];
const ADDRESSES: AllocatedAddress[] = [
  { address: '192.0.2.1', pool: 'default' }, { address: '192.0.2.2', pool: 'default' },
  { address: '2001:db8:5::1', pool: 'v6' }, { address: '203.0.113.1', pool: 'natpool' },
];

const portSpec = fc.record({ port: fc.constantFrom(80, 443), protocol: fc.constantFrom('TCP', 'UDP'), nodePort: fc.option(fc.constantFrom(30080, 30443), { nil: undefined }) });
const serviceSpec = fc.record({
  created: fc.integer({ min: 0, max: 2 }),
  ports: fc.array(portSpec, { minLength: 0, maxLength: 3 }),
  local: fc.boolean(),
  affinity: fc.boolean(),
  scheduler: fc.constantFrom(undefined, 'rr', 'mh', 'bogus'),
  forwarding: fc.constantFrom(undefined, 'dr', 'nat', 'nope'),
});
type Spec = typeof serviceSpec extends fc.Arbitrary<infer T> ? T : never;

const command = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), name: fc.constantFrom(...NAMES), spec: serviceSpec, recreate: fc.boolean() }),
  fc.record({ kind: fc.constant('delete' as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant('allocate' as const), name: fc.constantFrom(...NAMES), addresses: fc.subarray(ADDRESSES, { maxLength: 2 }) }),
  fc.record({ kind: fc.constant('slices' as const), name: fc.constantFrom(...NAMES), endpoints: fc.array(fc.record({ node: fc.constantFrom('node-a', 'node-b', 'node-c', 'node-gone'), ready: fc.boolean() }), { maxLength: 4 }) }),
);

type Command = typeof command extends fc.Arbitrary<infer T> ? T : never;

class World {
  services = new Map<string, V1Service>();
  slices = new Map<string, V1EndpointSlice>();
  /** By uid. */
  allocations = new Map<string, readonly AllocatedAddress[]>();
  /** Addresses by Service name: a re-created Service keeps asking for them under its new uid. */
  wanted = new Map<string, readonly AllocatedAddress[]>();
  generation = 0;

  put(name: string, spec: Spec, recreate: boolean): void {
    const old = this.services.get(name);
    const uid = old && !recreate ? old.metadata!.uid! : `uid-${name}-${++this.generation}`;
    if (old && old.metadata!.uid !== uid) this.allocations.delete(old.metadata!.uid!);
    const annotations: Record<string, string> = {};
    if (spec.scheduler) annotations['ipvs-lb.io/scheduler'] = spec.scheduler;
    if (spec.forwarding) annotations['ipvs-lb.io/forwarding'] = spec.forwarding;
    this.services.set(name, {
      metadata: { name, namespace: 'default', uid, annotations, creationTimestamp: new Date(NOW - 1000 * (3 - spec.created)) },
      spec: {
        type: 'LoadBalancer', ports: spec.ports.map((p) => ({ ...p })),
        externalTrafficPolicy: spec.local ? 'Local' : 'Cluster',
        ...(spec.affinity ? { sessionAffinity: 'ClientIP' } : {}),
      },
    });
    const addresses = this.wanted.get(name);
    if (addresses) this.allocations.set(uid, addresses);
  }

  inputs(): ModelInputs {
    return { services: [...this.services.values()], nodes, endpointSlices: [...this.slices.values()], allocations: this.allocations, config, now: NOW };
  }

  source() {
    return {
      service: (id: string) => this.services.get(id.slice(id.indexOf('/') + 1)),
      slices: (id: string) => [...this.slices.values()].filter((s) => `default/${s.metadata!.labels!['kubernetes.io/service-name']}` === id),
      allocations: (uid: string) => this.allocations.get(uid),
    };
  }
}

function applyCommand(w: World, c: Command): string[] {
  switch (c.kind) {
    case 'put':
      w.put(c.name, c.spec, c.recreate);
      return [`default/${c.name}`];
    case 'delete': {
      const svc = w.services.get(c.name);
      if (svc) w.allocations.delete(svc.metadata!.uid!);
      w.services.delete(c.name);
      return [`default/${c.name}`];
    }
    case 'allocate': {
      w.wanted.set(c.name, c.addresses);
      const svc = w.services.get(c.name);
      if (svc) w.allocations.set(svc.metadata!.uid!, c.addresses);
      return [`default/${c.name}`];
    }
    case 'slices':
      w.slices.set(c.name, {
        addressType: 'IPv4',
        metadata: { name: `${c.name}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': c.name } },
        endpoints: c.endpoints.map((e, i) => ({ addresses: [`203.0.113.${100 + i}`], nodeName: e.node, conditions: { ready: e.ready } })),
      });
      return [`default/${c.name}`];
  }
}

const byService = (problems: readonly ModelProblem[]) => {
  const m = new Map<string, ModelProblem[]>();
  for (const p of problems) m.set(p.service, [...(m.get(p.service) ?? []), p]);
  return m;
};

function run(initial: Array<{ name: string; spec: Spec; addresses: AllocatedAddress[] }>, commands: Command[], batch: number): void {
  const w = new World();
  for (const s of initial) {
    w.wanted.set(s.name, s.addresses);
    w.put(s.name, s.spec, false);
  }
  const model = new DesiredModel();
  assert.deepEqual(model.rebuild(w.inputs()), desiredState(w.inputs()));
  const current = new Map(model.state().virtualServices.map((v) => [v.key, v]));
  const problems = byService(model.state().problems);
  // Changes arrive in batches of `batch`, like a coalescing window.
  for (let i = 0; i < commands.length; i += batch) {
    const ids = commands.slice(i, i + batch).flatMap((c) => applyCommand(w, c));
    const delta = model.updateServices(ids, w.source());
    const want = desiredState(w.inputs());
    assert.deepEqual(model.state(), want, 'the kept state equals the whole computation');
    // The delta is exactly the difference.
    for (const k of delta.remove) current.delete(k);
    for (const v of delta.set) current.set(v.key, v);
    assert.deepEqual([...current.values()].sort((a, b) => (a.key < b.key ? -1 : 1)), want.virtualServices, 'applying the delta gives the new state');
    for (const [id, list] of delta.problems) {
      if (list.length === 0) problems.delete(id);
      else problems.set(id, list);
    }
    assert.deepEqual(problems, byService(want.problems), 'the problems delta gives the new problems');
  }
}

describe('incremental desired state (DesiredModel)', () => {
  it('after any sequence of Service, slice and address changes, equals the whole computation; deltas are exact', () => {
    const initial = fc.array(fc.record({ name: fc.constantFrom(...NAMES), spec: serviceSpec, addresses: fc.subarray(ADDRESSES, { maxLength: 2 }) }), { maxLength: 5 });
    fc.assert(fc.property(initial, fc.array(command, { maxLength: 25 }), fc.integer({ min: 1, max: 3 }), (init, cmds, batch) => run(init, cmds, batch)), fuzzParams(300));
  });

  it('an unchanged Service is not in the delta, and a new one on a contested key takes it only if older', () => {
    const w = new World();
    const spec: Spec = { created: 1, ports: [{ port: 80, protocol: 'TCP', nodePort: 30080 }], local: false, affinity: false, scheduler: undefined, forwarding: undefined };
    w.wanted.set('s0', [ADDRESSES[0]!]);
    w.put('s0', spec, false);
    const model = new DesiredModel();
    model.rebuild(w.inputs());
    const before = model.state().virtualServices[0]!;
    // A newer Service asking for the same VIP and port: it loses, s0 keeps its entry (not even re-sent).
    w.wanted.set('s1', [ADDRESSES[0]!]);
    w.put('s1', { ...spec, created: 2 }, false);
    const d1 = model.updateServices(['default/s1'], w.source());
    assert.deepEqual(d1.set, []);
    assert.deepEqual(d1.remove, []);
    assert.deepEqual(d1.problems.get('default/s1')?.map((p) => p.message), ['TCP/192.0.2.1:80 is already served for default/s0']);
    assert.equal(model.state().virtualServices[0], before);
    // s0 goes: s1 takes the key, its problem goes.
    w.services.delete('s0');
    const d2 = model.updateServices(['default/s0'], w.source());
    assert.deepEqual(d2.set.map((v) => `${v.key} ${v.service}`), ['TCP/192.0.2.1:80 default/s1']);
    assert.deepEqual(d2.remove, []);
    assert.deepEqual(d2.problems.get('default/s1'), []);
    assert.deepEqual(d2.problems.get('default/s0'), []);
  });

  it('says when a NotReady node leaves the state by itself (its grace period ends)', () => {
    const model = new DesiredModel();
    model.rebuild({ services: [], nodes, endpointSlices: [], allocations: new Map(), config, now: NOW });
    assert.equal(model.nextDeadline, NOW - 20_000 + 60_000);
  });
});
