// The soak's invariant checks against hand-made observations: a consistent world passes every check, and
// each planted violation (the kinds of bug the soak exists to find) is caught by the check that names it,
// while the lawful look-alikes (a refusal the allocator reported, a node leaving at the end of its grace
// period, an error a fault explains) are not flagged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffTable, expectedTable, groupOf } from '../../lab/soak/expected.js';
import { explain, findStalls } from '../../lab/soak/explain.js';
import type { FaultRecord } from '../../lab/soak/fixture.js';
import { A, type ServiceSpec } from '../../lab/soak/generator.js';
import { checkInvariants, fingerprint, type CheckContext, type LogError } from '../../lab/soak/invariants.js';
import type { AllocationRow, HostObservation, KernelService, KubeEvent, KubeNode, KubeService, Observation } from '../../lab/soak/observation.js';
import { FOREIGN_SERVICE, HOSTS, NODES } from '../../lab/soak/world.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

interface SvcIn {
  name: string;
  ip?: string;
  ports?: string[];
  ann?: Record<string, string>;
  lbIP?: string;
  created?: number;
}

function svc(s: SvcIn): KubeService {
  return {
    metadata: { name: s.name, namespace: 'default', uid: `uid-${s.name}`, creationTimestamp: iso(s.created ?? NOW - 60_000), annotations: s.ann ?? {} },
    spec: {
      type: 'LoadBalancer',
      ports: (s.ports ?? ['TCP/80']).map((p, i) => ({ name: `p${i}`, protocol: p.split('/')[0]!, port: Number(p.split('/')[1]), nodePort: 30000 + i })),
      ...(s.lbIP ? { loadBalancerIP: s.lbIP } : {}),
    },
    status: { loadBalancer: s.ip ? { ingress: [{ ip: s.ip, ipMode: 'VIP' }] } : {} },
  };
}

const node = (name: string, ip: string, ready = true, since = NOW - 3_600_000): KubeNode => ({
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: iso(since) }] },
});

const event = (s: KubeService, reason: string, message: string, at: number, type = 'Warning'): KubeEvent => ({
  metadata: { name: `${s.metadata.name}.${at}` }, involvedObject: { kind: 'Service', name: s.metadata.name, uid: s.metadata.uid },
  reason, message, type, count: 1, firstTimestamp: iso(at), lastTimestamp: iso(at), source: { component: 'ipvs-lb', host: 'lb1' },
});

const rowsFor = (services: KubeService[]): AllocationRow[] => services.flatMap((s) => (s.status?.loadBalancer?.ingress ?? []).map((i) => ({
  address: i.ip!, pool: 'default', namespace: 'default', name: s.metadata.name, uid: s.metadata.uid,
  sharingKey: s.metadata.annotations?.[A.share] ?? null, ports: (s.spec.ports ?? []).map((p) => `${p.protocol}/${p.port}`).sort(), orphaned: false,
})));

/** Turns the expected table into what `ipvsadm -S` would give back. */
const kernelOf = (services: KubeService[], nodes: KubeNode[]): KernelService[] =>
  [...expectedTable(services, nodes, NOW).values()].map((e) => ({ key: e.key, scheduler: e.scheduler, flags: e.flags, persistent: e.persistent, dests: e.dests.map((d) => ({ address: d.address, port: d.port, forwarding: d.forwarding, weight: d.weight })) }));

interface World {
  services: KubeService[];
  nodes: KubeNode[];
  events: KubeEvent[];
  /** host → groups it is master of */
  masters: Record<string, string[]>;
}

function observe(w: World, tweak: (hosts: Record<string, HostObservation>) => void = () => undefined): Observation {
  const vips = [...new Set(w.services.flatMap((s) => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip!)))];
  const hosts: Record<string, HostObservation> = {};
  for (const h of HOSTS) {
    const mine = w.masters[h.name] ?? [];
    hosts[h.name] = {
      host: h.name,
      ipvs: { ok: true, value: kernelOf(w.services, w.nodes) },
      addresses: { ok: true, value: [h.ip, ...mine.map((g) => (g === 'a' ? '169.254.255.51' : '169.254.255.52')), ...vips.filter((v) => mine.includes(groupOf(v)))].sort() },
      sync: { ok: true, value: { master: true, backup: true } },
      allocations: { ok: true, value: rowsFor(w.services) },
      health: { ok: true, value: { ready: true, checks: { ledger: true, kernel: true, reconciledOnce: true, kubernetes: true }, messages: [] } },
      vrrp: { ok: true, value: ['a', 'b'].map((g) => ({ name: g, state: mine.includes(g) ? 'MASTER' : 'BACKUP', vips: [] })) },
    };
  }
  tweak(hosts);
  return { at: NOW, end: NOW + 2000, services: { ok: true, value: w.services }, nodes: { ok: true, value: w.nodes }, events: { ok: true, value: w.events }, hosts: HOSTS.map((h) => hosts[h.name]!) };
}

function planOf(services: KubeService[]): Record<string, ServiceSpec> {
  return Object.fromEntries(services.map((s) => [s.metadata.name, {
    name: s.metadata.name,
    ports: (s.spec.ports ?? []).map((p) => ({ name: p.name!, port: p.port, protocol: p.protocol as 'TCP' | 'UDP' })),
    annotations: s.metadata.annotations ?? {},
    ...(s.spec.loadBalancerIP ? { loadBalancerIP: s.spec.loadBalancerIP } : {}),
  }]));
}

const ctx = (w: World, over: Partial<CheckContext> = {}): CheckContext => ({ plan: planOf(w.services), logErrors: [], explained: () => false, unexpectedExits: [], ...over });

/** 192.0.2.1 and .2 belong to group a, .4 to group b (a stable hash, see groupForVip). */
function cleanWorld(): World {
  return {
    services: [
      svc({ name: 's-1', ip: '192.0.2.1' }),
      svc({ name: 's-2', ip: '192.0.2.4', ports: ['TCP/443', 'UDP/53'], ann: { [A.scheduler]: 'mh', [A.forwarding]: 'tun' } }),
      svc({ name: 's-3', ip: '192.0.2.2', ports: ['TCP/80'], ann: { [A.share]: 'k1' } }),
      svc({ name: 's-4', ip: '192.0.2.2', ports: ['TCP/443'], ann: { [A.share]: 'k1', [A.forwarding]: 'nat' } }),
    ],
    nodes: NODES.map((n) => node(n.name, n.ip)),
    events: [],
    masters: { lb1: ['a'], lb2: ['b'] },
  };
}

const failed = (o: Observation, c: CheckContext) => checkInvariants(o, c).violations.map((v) => `${v.check}${v.host ? `@${v.host}` : ''}`).sort();

describe('soak invariants', () => {
  it('a consistent world passes every check', () => {
    const w = cleanWorld();
    const r = checkInvariants(observe(w), ctx(w));
    assert.deepEqual(r.violations, []);
    assert.equal(r.passed.length, 24);
    assert.equal(new Set(r.passed).size, r.passed.length);
  });

  it('the expected table follows annotations: scheduler and flags, tunnel, NAT to the nodePort, the foreign service', () => {
    const w = cleanWorld();
    const t = expectedTable(w.services, w.nodes, NOW);
    assert.deepEqual([...t.keys()].sort(), ['TCP/192.0.2.1:80', 'TCP/192.0.2.2:443', 'TCP/192.0.2.2:80', 'TCP/192.0.2.4:443', `TCP/${FOREIGN_SERVICE.address}:22`, 'UDP/192.0.2.4:53']);
    assert.deepEqual([t.get('TCP/192.0.2.4:443')!.scheduler, t.get('TCP/192.0.2.4:443')!.flags, t.get('TCP/192.0.2.4:443')!.dests[0]!.forwarding], ['mh', ['mh-fallback', 'mh-port'], 'tun']);
    assert.deepEqual(t.get('TCP/192.0.2.2:443')!.dests.map((d) => `${d.address}:${d.port} ${d.forwarding}`), ['198.51.100.11:30000 nat', '198.51.100.12:30000 nat', '198.51.100.13:30000 nat']);
    assert.equal(t.get('TCP/192.0.2.1:80')!.scheduler, 'wlc', 'the daemon default');
  });

  it('catches an address on two Services without a common key, unless the one that must move reported why it cannot', () => {
    const w = cleanWorld();
    w.services[0] = svc({ name: 's-1', ip: '192.0.2.2', ports: ['TCP/8080'] });
    assert.deepEqual([...new Set(failed(observe(w), ctx(w)).filter((c) => c.startsWith('ipam')))], ['ipam.no-unlawful-sharing', 'ipam.request-served-or-reported']);
    // The same leftover with the allocator's refusal as the latest word on s-1: lawful (rule 9, all or nothing).
    w.events.push(event(w.services[0]!, 'AllocationFailed', 'RequestedAddressInUse: 192.0.2.5 is in use by default/s-9', NOW - 5000));
    assert.deepEqual(failed(observe(w), ctx(w)).filter((c) => c.startsWith('ipam')), []);
    // The data plane's PortConflict after it (the port s-1 cannot get there) is no IPAM decision: the refusal stands.
    w.events.push(event(w.services[0]!, 'PortConflict', 'TCP/192.0.2.2:8080 is already served for default/s-2', NOW - 3000));
    assert.deepEqual(failed(observe(w), ctx(w)).filter((c) => c.startsWith('ipam')), []);
    // A later IPAllocated means the refusal is old news.
    w.events.push(event(w.services[0]!, 'IPAllocated', 'allocated 192.0.2.2 from pool default', NOW - 1000, 'Normal'));
    assert.ok(failed(observe(w), ctx(w)).includes('ipam.no-unlawful-sharing'));
  });

  it('catches sharers with different keys or a common port', () => {
    const w = cleanWorld();
    w.services[3] = svc({ name: 's-4', ip: '192.0.2.2', ports: ['TCP/80'], ann: { [A.share]: 'k1' } });
    assert.ok(failed(observe(w), ctx(w)).includes('ipam.no-unlawful-sharing'));
    const v = cleanWorld();
    v.services[3] = svc({ name: 's-4', ip: '192.0.2.2', ports: ['TCP/443'], ann: { [A.share]: 'k2' } });
    assert.ok(failed(observe(v), ctx(v)).includes('ipam.no-unlawful-sharing'));
  });

  it('catches a Service left without its address, or with another than it asked for, when no Event says why', () => {
    const w = cleanWorld();
    w.services.push(svc({ name: 's-5' }));
    w.services.push(svc({ name: 's-6', ip: '192.0.2.6', ann: { [A.ips]: '192.0.2.7' } }));
    w.services.push(svc({ name: 's-7', ip: '192.0.2.8', ann: { [A.pool]: 'manual' } }));
    w.masters = { lb1: ['a'], lb2: ['b'] };
    const r = checkInvariants(observe(w), ctx(w));
    const v = r.violations.filter((x) => x.check === 'ipam.request-served-or-reported');
    assert.deepEqual(v.map((x) => x.service), ['default/s-5', 'default/s-6', 'default/s-7']);
    assert.match(v[1]!.message, /asks for 192.0.2.7 but holds 192.0.2.6/);
    assert.match(v[2]!.message, /asks for pool manual but holds 192.0.2.8 of pool default/);
    w.events.push(event(w.services[4]!, 'AllocationFailed', 'PoolExhausted: every pool is full', NOW - 100));
    w.events.push(event(w.services[5]!, 'AllocationFailed', 'RequestedAddressInUse: 192.0.2.7 is in use', NOW - 100));
    w.events.push(event(w.services[6]!, 'AllocationFailed', 'PoolExhausted: pool manual is full', NOW - 100));
    assert.ok(!failed(observe(w), ctx(w)).includes('ipam.request-served-or-reported'));
  });

  it('catches an address outside every pool', () => {
    const w = cleanWorld();
    w.services[0] = svc({ name: 's-1', ip: '192.0.2.150' });
    assert.ok(failed(observe(w), ctx(w)).includes('ipam.addresses-in-pools'));
  });

  it('catches an invalid data-plane annotation no InvalidAnnotation Event names', () => {
    const w = cleanWorld();
    w.services[0] = svc({ name: 's-1', ip: '192.0.2.1', ann: { [A.scheduler]: 'fastest' } });
    assert.deepEqual(failed(observe(w), ctx(w)), ['events.bad-annotations-reported']);
    w.events.push(event(w.services[0]!, 'InvalidAnnotation', 'annotation ipvs-lb.io/scheduler must be one of rr, wrr (got "fastest")', NOW - 100));
    assert.deepEqual(failed(observe(w), ctx(w)), []);
  });

  it('catches a ledger that lost a row, kept a deleted Service, or holds stale facts', () => {
    const w = cleanWorld();
    const lost = observe(w, (h) => {
      const a = h.lb2!.allocations;
      if (a.ok) a.value.splice(0, 1);
    });
    assert.deepEqual(failed(lost, ctx(w)), ['ledger.hosts-agree', 'ledger.matches-status@lb2']);
    const ghost = observe(w, (h) => {
      const a = h.lb1!.allocations;
      if (a.ok) a.value.push({ address: '192.0.2.9', pool: 'default', namespace: 'default', name: 'gone', uid: 'uid-gone', sharingKey: null, ports: ['TCP/80'], orphaned: false });
    });
    assert.deepEqual(failed(ghost, ctx(w)), ['ledger.hosts-agree', 'ledger.matches-status@lb1']);
    // The Service dropped its key but the ledger still records it: the next sharer would be let in.
    const stale = observe(w, (h) => {
      for (const x of [h.lb1!, h.lb2!]) if (x.allocations.ok) x.allocations.value[0]!.sharingKey = 'k1';
    });
    assert.deepEqual(failed(stale, ctx(w)), ['ledger.facts-current@lb1', 'ledger.facts-current@lb2']);
  });

  it('catches a kernel that lacks a destination, has a wrong weight or scheduler, an extra service, or lost the foreign one', () => {
    const w = cleanWorld();
    const o = observe(w, (h) => {
      const t = h.lb1!.ipvs;
      if (!t.ok) return;
      t.value[0]!.dests.pop();
      t.value[1]!.dests[0]!.weight = 5;
      t.value[2]!.scheduler = 'rr';
      t.value.push({ key: 'TCP/192.0.2.99:80', scheduler: 'wlc', flags: [], persistent: undefined, dests: [] });
      t.value.splice(t.value.findIndex((s) => s.key.startsWith(`TCP/${FOREIGN_SERVICE.address}`)), 1);
    });
    const v = checkInvariants(o, ctx(w)).violations;
    assert.deepEqual(v.map((x) => `${x.check}@${x.host}`), ['kernel.matches-desired@lb1']);
    const d = v[0]!.detail!.join('\n');
    for (const want of [/missing destination/, /weight 5, want dr weight 1|weight 5, want tun weight 1|weight 5, want nat weight 1/, /service differs: kernel .* rr, want .* wlc|service differs/, /unexpected service TCP\/192.0.2.99:80/, /missing service TCP\/203.0.113.99:22/]) assert.match(d, want);
  });

  it('drains a NotReady node at weight 0, then lets it go only after its grace period', () => {
    const w = cleanWorld();
    w.nodes[2] = node('node-3', '198.51.100.13', false, NOW - 3000);
    // The kernel still serves it at weight 1: too late in draining.
    assert.deepEqual(failed(observe(w, () => undefined), ctx(w)).slice(0, 1), []);
    const fresh = observe(w);
    for (const h of fresh.hosts) if (h.ipvs.ok) for (const s of h.ipvs.value) for (const d of s.dests) if (d.address === '198.51.100.13') d.weight = 1;
    assert.deepEqual(failed(fresh, ctx(w)), ['kernel.matches-desired@lb1', 'kernel.matches-desired@lb2']);
    // Near the end of the 10 s grace period either answer is right; long after it, the node must be gone.
    const near = { ...cleanWorld(), nodes: [node('node-1', '198.51.100.11'), node('node-2', '198.51.100.12'), node('node-3', '198.51.100.13', false, NOW - 11_000)] };
    const gone = kernelOf(near.services, [near.nodes[0]!, near.nodes[1]!]);
    assert.deepEqual(failed(observe(near, (h) => { h.lb1!.ipvs = { ok: true, value: gone }; }), ctx(near)), []);
    const late = { ...near, nodes: [near.nodes[0]!, near.nodes[1]!, node('node-3', '198.51.100.13', false, NOW - 60_000)] };
    const stillThere = kernelOf(late.services, near.nodes.slice(0, 2)).map((s) => s);
    const withNode3 = observe(late, (h) => {
      h.lb1!.ipvs = { ok: true, value: stillThere };
      if (h.lb2!.ipvs.ok) for (const s of h.lb2!.ipvs.value) if (s.key.startsWith('TCP/192.0.2.1:')) s.dests.push({ address: '198.51.100.13', port: 80, forwarding: 'dr', weight: 0 });
    });
    assert.deepEqual(failed(withNode3, ctx(late)), ['kernel.matches-desired@lb2']);
  });

  it('catches a VIP bound on the backup of its group, a VIP the master lacks, and two masters', () => {
    const w = cleanWorld();
    const onBackup = observe(w, (h) => {
      if (h.lb2!.addresses.ok) h.lb2!.addresses.value.push('192.0.2.1');
    });
    assert.deepEqual(failed(onBackup, ctx(w)), ['vip.bound-only-on-master@lb2']);
    const missing = observe(w, (h) => {
      if (h.lb1!.addresses.ok) h.lb1!.addresses.value = h.lb1!.addresses.value.filter((a) => a !== '192.0.2.2');
    });
    assert.deepEqual(failed(missing, ctx(w)), ['vip.bound-only-on-master@lb1']);
    const stale = observe(w, (h) => {
      if (h.lb1!.addresses.ok) h.lb1!.addresses.value.push('192.0.2.9');
    });
    assert.match(checkInvariants(stale, ctx(w)).violations[0]!.detail![0]!, /192.0.2.9 is bound but no Service is served on it/);
    const split = observe(w, (h) => {
      if (h.lb2!.addresses.ok) h.lb2!.addresses.value.push('169.254.255.51');
    });
    assert.deepEqual(failed(split, ctx(w)), ['vip.bound-only-on-master@lb2', 'vrrp.daemon-agrees-with-keepalived@lb2', 'vrrp.one-master-per-group']);
  });

  it('catches a daemon whose VRRP view or sync daemons disagree with keepalived', () => {
    const w = cleanWorld();
    const o = observe(w, (h) => {
      if (h.lb1!.vrrp.ok) h.lb1!.vrrp.value[0]!.state = 'BACKUP';
      h.lb2!.sync = { ok: true, value: { master: false, backup: true } };
    });
    assert.deepEqual(failed(o, ctx(w)), ['sync.both-running@lb2', 'vrrp.daemon-agrees-with-keepalived@lb1']);
  });

  it('catches an unhealthy daemon, an unexplained error line and a daemon that died by itself', () => {
    const w = cleanWorld();
    const o = observe(w, (h) => {
      h.lb1!.health = { ok: true, value: { ready: true, checks: { kubernetes: false }, messages: ['Kubernetes API unreachable'] } };
      h.lb2!.health = { ok: false, error: 'readyz of lb2: connection refused' };
    });
    const err: LogError = { host: 'lb2', time: NOW - 1000, msg: 'allocation pass failed; will retry on the next change', line: '{"level":"error"}' };
    const c = ctx(w, { logErrors: [err], unexpectedExits: [{ host: 'lb1', exit: 'exit status 1', logTail: 'boom' }] });
    assert.deepEqual(failed(o, c), ['daemon.alive@lb1', 'health.ready@lb1', 'health.ready@lb2', 'logs.no-unexplained-errors@lb2']);
    assert.deepEqual(failed(observe(w), ctx(w, { logErrors: [err], explained: () => true })), []);
  });

  it('catches an API that does not hold what the plan made', () => {
    const w = cleanWorld();
    const plan = planOf(w.services);
    delete plan['s-2'];
    plan['s-9'] = { name: 's-9', ports: [], annotations: {} };
    plan['s-1'] = { ...plan['s-1']!, annotations: { [A.share]: 'k2' } };
    const v = checkInvariants(observe(w), ctx(w, { plan })).violations.filter((x) => x.check === 'harness.api-matches-plan');
    assert.deepEqual(v.map((x) => x.service).sort(), ['s-1', 's-2', 's-9']);
  });

  it('reports an unreadable API as one violation instead of judging without it', () => {
    const w = cleanWorld();
    const o = { ...observe(w), services: { ok: false as const, error: 'services: curl failed' } };
    assert.deepEqual(checkInvariants(o, ctx(w)).violations.map((v) => v.check), ['observe.api']);
  });

  it('diffs tables line by line in ipvsadm terms', () => {
    const w = cleanWorld();
    const want = expectedTable(w.services, w.nodes, NOW);
    assert.deepEqual(diffTable(kernelOf(w.services, w.nodes), want), []);
    assert.deepEqual(diffTable([], new Map([...want].slice(0, 1))), ['missing service TCP/192.0.2.1:80 wlc (for default/s-1)']);
  });

  it('a fingerprint ignores clocks and Events but sees every state change', () => {
    const w = cleanWorld();
    const a = observe(w);
    const b = { ...observe({ ...w, events: [event(w.services[0]!, 'IPAllocated', 'x', NOW, 'Normal')] }), at: NOW + 5000 };
    assert.equal(fingerprint(a), fingerprint(b));
    const c = observe(w, (h) => {
      if (h.lb1!.vrrp.ok) h.lb1!.vrrp.value[0]!.state = 'FAULT';
    });
    assert.notEqual(fingerprint(a), fingerprint(c));
  });
});

describe('soak error explanations', () => {
  const rec = (over: Partial<FaultRecord>): FaultRecord => ({ fault: { kind: 'vrrp-master-kill', group: 'a', all: true }, step: 3, hosts: ['lb1'], startedAt: NOW, endedAt: NOW + 2000, note: '', ...over });
  const line = (host: string, msg: string, time: number): LogError => ({ host, msg, time, line: msg });

  it('explains a keepalived death only on the host whose keepalived was killed, and only soon after', () => {
    const r = [rec({})];
    assert.ok(explain(r, line('lb1', 'keepalived exited (signal SIGKILL); VIPs released, restarting it', NOW + 500)));
    assert.equal(explain(r, line('lb2', 'keepalived exited', NOW + 500)), undefined);
    assert.equal(explain(r, line('lb1', 'keepalived exited', NOW + 120_000)), undefined);
    assert.equal(explain(r, line('lb1', 'keepalived exited', NOW - 10_000)), undefined);
    assert.equal(explain(r, line('lb1', 'could not bind VIP', NOW + 500)), undefined);
  });

  it('finds the guest\'s stalls in its heartbeat and explains a lost Lease across one, nothing else', () => {
    const beats = ['1700000000.000100', '1700000000.250200', '1700000004.000000', '1700000004.250000', 'garbage', '1700000004.500000'].join('\n');
    const stalls = findStalls(beats);
    assert.deepEqual(stalls.map((x) => [x.from, Math.round(x.to)]), [[1700000000250.2, 1700000004000]]);
    const lease = 'lease: could not renew within the renew deadline; stepping down';
    assert.ok(explain([], line('lb1', lease, 1700000005000), stalls));
    assert.equal(explain([], line('lb1', lease, 1700000100000), stalls), undefined);
    assert.equal(explain([], line('lb1', 'keepalived exited', 1700000004100), stalls), undefined);
  });

  it('explains a lost Lease by an API outage on any host, and nothing by a fault of another kind', () => {
    const outage = rec({ fault: { kind: 'api-outage', downMs: 5000, compact: false }, hosts: [] });
    const msg = 'lease: could not renew within the renew deadline; stepping down';
    assert.ok(explain([outage], line('lb2', msg, NOW + 6000)));
    assert.equal(explain([rec({ fault: { kind: 'watch-drop', abrupt: true }, hosts: [] })], line('lb2', msg, NOW + 100)), undefined);
  });

  it('explains the peer\'s lost Lease by a daemon restart only on an emulated backend, and only while the restart may still load', () => {
    const kill = rec({ fault: { kind: 'daemon-kill', host: 'lb1', downMs: 2000, withKeepalived: false }, hosts: ['lb1'] });
    const msg = 'lease: could not renew within the renew deadline; stepping down';
    assert.equal(explain([kill], line('lb2', msg, NOW + 150_000)), undefined, 'UML (slowdown 1): a daemon start-up holds up nobody');
    assert.ok(explain([kill], line('lb2', msg, NOW + 150_000), [], undefined, 3));
    assert.equal(explain([kill], line('lb2', msg, NOW + 200_000), [], undefined, 3), undefined);
  });
});
