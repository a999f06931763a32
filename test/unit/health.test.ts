// The pure parts of backend health: the rise/fall state machine with flap damping, the probe scheduler, the
// probe plan (shared targets), the DR path budget, the drain lifecycle, the Events' transitions, the
// annotations and the marking rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/schema.js';
import type { FlapDampingConfig } from '../../src/config/types.js';
import { applyHealth, type Lifecycle } from '../../src/health/apply.js';
import { backendTransitions } from '../../src/health/backends.js';
import { initialLaneState, noteNodeResult, pickUnits, unitOf } from '../../src/health/dr-lane.js';
import { cidrsOf, rangeToCidrs, renderIptablesRules, renderNftRules } from '../../src/health/marks.js';
import { planProbes, resolvePolicy } from '../../src/health/plan.js';
import { ProbeScheduler } from '../../src/health/schedule.js';
import { initialState, observe, releaseAt, type CheckState } from '../../src/health/state.js';
import type { DrLane, DrUnit, Policy } from '../../src/health/types.js';
import { parseRange } from '../../src/ipam/range.js';
import { healthCheckAnnotations } from '../../src/model/annotations.js';
import type { DesiredRealServer, DesiredState, DesiredVirtualService } from '../../src/model/types.js';

const parsed = parseConfig({ interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }] });
assert.ok(parsed.ok);
const hc = parsed.config.healthCheck;
const T0 = Date.parse('2026-12-01T10:00:00Z');

const policy = (over: Partial<Policy> = {}): Policy => ({ key: 'p', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, damping: undefined, ...over });
const damping: FlapDampingConfig = { enabled: true, halfLifeSeconds: 60, suppressThreshold: 2.5, reuseThreshold: 1, maxSuppressSeconds: 600 };
const ok = { ok: true, latencyMs: 5 };
const bad = { ok: false, latencyMs: 5, error: 'connection refused' };

function run(p: Policy, results: Array<typeof ok | typeof bad>, start: CheckState = initialState(), t = T0, step = 1000): { s: CheckState; statuses: string[]; t: number } {
  let s = start;
  const statuses: string[] = [];
  for (const r of results) {
    t += step;
    s = observe(s, r, t, p);
    statuses.push(s.status);
  }
  return { s, statuses, t };
}

describe('health state machine', () => {
  it('starts unknown (serving), goes up on a success, down after fall failures, up again after rise successes', () => {
    const p = policy();
    const { statuses } = run(p, [ok, bad, bad, bad, ok, ok, ok]);
    assert.deepEqual(statuses, ['up', 'up', 'up', 'down', 'down', 'up', 'up']);
  });

  it('needs fall failures in a row: a success in between starts the count again', () => {
    const { statuses, s } = run(policy(), [bad, bad, ok, bad, bad]);
    assert.ok(!statuses.includes('down'));
    assert.equal(s.failures, 2);
  });

  it('a never-seen target that fails goes down after fall failures, not at once', () => {
    const { statuses } = run(policy({ fall: 2 }), [bad, bad]);
    assert.deepEqual(statuses, ['unknown', 'down']);
  });

  it('an answer slower than the policy timeout is a failure for that policy only', () => {
    const slow = { ok: true, latencyMs: 800 };
    // The probe ran with the 1000 ms timeout of the laxer policy sharing the target.
    const strict = observe(initialState(), slow, T0, policy({ timeoutMs: 500, fall: 1 }), 1000);
    const lax = observe(initialState(), slow, T0, policy({ timeoutMs: 1000, fall: 1 }), 1000);
    assert.equal(strict.status, 'down');
    assert.match(strict.lastError ?? '', /800 ms, beyond the 500 ms timeout/);
    assert.equal(lax.status, 'up');
    // With the policy's own timeout the probe had decided: an answer handled late by a busy loop counts.
    assert.equal(observe(initialState(), slow, T0, policy({ timeoutMs: 500, fall: 1 }), 500).status, 'up');
  });

  it('flap damping holds a target down after repeated falls and releases it once the penalty has decayed', () => {
    const p = policy({ fall: 1, rise: 1, damping });
    // Three falls within a few seconds: the third reaches the suppress threshold.
    const flapping = run(p, [ok, bad, ok, bad, ok, bad]);
    assert.equal(flapping.s.flaps, 3);
    assert.equal(flapping.s.suppressed, true);
    // Stable successes do not bring it back while suppressed...
    const held = run(p, [ok, ok, ok], flapping.s, flapping.t);
    assert.deepEqual(held.statuses, ['down', 'down', 'down']);
    const release = releaseAt(held.s, p)!;
    assert.ok(release > held.t, 'release lies in the future');
    // ...until the penalty (about 3) has halved below the reuse threshold (1): about 95 s at a 60 s half-life.
    const later = observe(held.s, ok, release + 1000, p);
    assert.equal(later.status, 'up');
    assert.equal(later.suppressed, false);
  });

  it('without damping the same flapping returns at once', () => {
    const { s } = run(policy({ fall: 1, rise: 1 }), [ok, bad, ok, bad, ok, bad, ok]);
    assert.equal(s.status, 'up');
  });

  it('maxSuppressSeconds bounds the hold however often it flapped', () => {
    const p = policy({ fall: 1, rise: 1, damping: { ...damping, maxSuppressSeconds: 120 } });
    const many = run(p, Array.from({ length: 40 }, (_, i) => (i % 2 ? bad : ok)), initialState(), T0, 10);
    assert.ok(many.s.suppressed);
    const until = releaseAt(many.s, p)!;
    assert.ok(until - many.t <= 120_000 + 1, `held ${until - many.t} ms`);
  });
});

describe('probe scheduler', () => {
  it('spreads first runs over one interval, then runs each target once per interval at a fixed rate', () => {
    const s = new ProbeScheduler();
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    s.sync(keys.map((key) => ({ key, intervalMs: 1000 })), T0);
    const runs = new Map<string, number[]>();
    const firstAt: number[] = [];
    // Steps of 10 ms: a run starts at most 10 ms after it was due.
    for (let t = T0; t < T0 + 11_000; t += 10) {
      for (const k of s.takeDue(t, 1000)) {
        if (!runs.has(k)) firstAt.push(t - T0);
        runs.set(k, [...(runs.get(k) ?? []), t]);
        s.done(k, t + 3);
      }
    }
    assert.ok(Math.max(...firstAt) <= 1000 && Math.min(...firstAt) >= 0);
    // Spread: no 10 ms slot holds more than a few of the 200 first runs.
    const slots = new Map<number, number>();
    for (const f of firstAt) slots.set(Math.floor(f / 10), (slots.get(Math.floor(f / 10)) ?? 0) + 1);
    assert.ok(Math.max(...slots.values()) <= 8);
    for (const [k, times] of runs) {
      assert.ok(times.length >= 10, `${k} ran ${times.length} times in 11 s`);
      for (let i = 1; i < times.length; i++) assert.ok(Math.abs(times[i]! - times[i - 1]! - 1000) <= 10, `${k}: runs ${times[i]! - times[i - 1]!} ms apart`);
    }
  });

  it('never runs a target twice at once and respects the limit', () => {
    const s = new ProbeScheduler();
    s.sync([{ key: 'a', intervalMs: 100 }, { key: 'b', intervalMs: 100 }, { key: 'c', intervalMs: 100 }], T0);
    const first = s.takeDue(T0 + 100, 2);
    assert.equal(first.length, 2);
    // Busy ones are not handed out again, however late it gets.
    const second = s.takeDue(T0 + 1000, 10);
    assert.deepEqual(second.filter((k) => first.includes(k)), []);
    assert.equal(second.length, 1);
    assert.equal(s.late, 1, 'the third started more than an interval late');
  });

  it('drops removed targets and picks up a shorter interval at once', () => {
    const s = new ProbeScheduler();
    s.sync([{ key: 'a', intervalMs: 60_000 }, { key: 'b', intervalMs: 60_000 }], T0);
    s.sync([{ key: 'a', intervalMs: 100 }], T0);
    assert.equal(s.size, 1);
    assert.deepEqual(s.takeDue(T0 + 100, 10), ['a']);
    assert.equal(s.nextAt(), undefined, 'a is busy and b is gone');
  });

  it('after falling far behind it starts again from now instead of firing a backlog', () => {
    const s = new ProbeScheduler();
    s.sync([{ key: 'a', intervalMs: 100 }], T0);
    const [k] = s.takeDue(T0 + 100, 1);
    s.done(k!, T0 + 5000);
    assert.ok(s.nextAt()! >= T0 + 5000);
  });
});

function rs(node: string, n: number, state: DesiredRealServer['state'] = 'serving'): DesiredRealServer {
  return { address: `198.51.100.${10 + n}`, port: 80, weight: state === 'serving' ? 1 : 0, node, state };
}
const NODES = ['node-1', 'node-2', 'node-3'];
function vs(key: string, o: { policy?: 'Cluster' | 'Local'; hcnp?: number; overrides?: object; forwarding?: 'dr' | 'tun' | 'nat'; protocol?: 'TCP' | 'UDP'; servers?: DesiredRealServer[]; service?: string; vip?: string } = {}): DesiredVirtualService {
  const [, vip, port] = /^\w+\/(.+):(\d+)$/.exec(key)!;
  return {
    key, vip: o.vip ?? vip!, family: 4, protocol: o.protocol ?? 'TCP', port: Number(port), scheduler: 'rr', schedulerFlags: [], persistenceTimeoutSeconds: undefined,
    forwarding: o.forwarding ?? 'dr', service: o.service ?? `default/${key}`, serviceUid: `uid-${o.service ?? key}`, pool: 'default', vrrpGroup: undefined,
    realServers: o.servers ?? NODES.map((n, i) => rs(n, i + 1)),
    health: { trafficPolicy: o.policy ?? 'Cluster', healthCheckNodePort: o.hcnp, overrides: o.overrides ?? {} },
  };
}

describe('probe plan', () => {
  it('probes kube-proxy once per node however many Cluster Services there are, with each distinct policy kept', () => {
    const many = Array.from({ length: 50 }, (_, i) => vs(`TCP/192.0.2.${i + 1}:80`, i === 7 ? { overrides: { fall: 5 } } : {}));
    const plan = planProbes(many, { config: hc, drAvailable: false });
    assert.deepEqual([...plan.http.keys()].sort(), NODES.map((n) => `kube-proxy|${n}|10256`));
    const t = plan.http.get('kube-proxy|node-1|10256')!;
    assert.equal(t.consumers, 50);
    assert.equal(t.policies.size, 2);
    assert.equal(t.address, '198.51.100.11');
  });

  it('probes a Local Service on its healthCheckNodePort, once per (node, port) for all its virtual services', () => {
    const plan = planProbes([vs('TCP/192.0.2.1:80', { policy: 'Local', hcnp: 31001 }), vs('TCP/192.0.2.1:443', { policy: 'Local', hcnp: 31001 })], { config: hc, drAvailable: false });
    assert.deepEqual([...plan.http.keys()].sort(), NODES.map((n) => `service|${n}|31001`));
  });

  it('leaves out NotReady real servers, Services with health-check off, and kube-proxy probes when its port is off', () => {
    const servers = [rs('node-1', 1), rs('node-2', 2, 'draining-not-ready')];
    const plan = planProbes([vs('TCP/192.0.2.1:80', { servers }), vs('TCP/192.0.2.2:80', { overrides: { enabled: false } })], { config: hc, drAvailable: true });
    assert.deepEqual([...plan.http.keys()], ['kube-proxy|node-1|10256']);
    assert.deepEqual([...plan.lanes.keys()], ['node-1']);
    assert.equal(plan.vs.has('TCP/192.0.2.2:80'), false);
    const off = planProbes([vs('TCP/192.0.2.1:80')], { config: { ...hc, kubeProxyHealthPort: undefined }, drAvailable: false });
    assert.equal(off.http.size, 0);
  });

  it('makes DR units only for TCP virtual services forwarded by DR', () => {
    const plan = planProbes([vs('TCP/192.0.2.1:80'), vs('UDP/192.0.2.1:53', { protocol: 'UDP' }), vs('TCP/192.0.2.3:80', { forwarding: 'tun' }), vs('TCP/192.0.2.4:80', { overrides: { drPath: false } })], { config: hc, drAvailable: true });
    const l = plan.lanes.get('node-2')!;
    assert.deepEqual(l.vss.map((v) => v.key), ['TCP/192.0.2.1:80']);
    assert.deepEqual(l.addresses, { 4: '198.51.100.12' });
  });

  it('resolves annotations over the config', () => {
    const p = resolvePolicy(hc, { intervalSeconds: 0.5, timeoutSeconds: 0.2, rise: 5 });
    assert.deepEqual([p.intervalMs, p.timeoutMs, p.rise, p.fall, p.key], [500, 200, 5, 3, '500/200/5/3']);
  });
});

function lane(units: number, vips = units): { l: DrLane; units: DrUnit[] } {
  const vssList = Array.from({ length: units }, (_, i) => vs(`TCP/192.0.2.${(i % vips) + 1}:${8000 + i}`)).sort((a, b) => (a.key < b.key ? -1 : 1));
  const l: DrLane = { node: 'node-1', vss: vssList, addresses: { 4: '198.51.100.11' }, vipCount: Math.min(3, vips), intervalMs: 1000, timeoutMs: 500 };
  return { l, units: vssList.map((v) => unitOf(l, v, policy())!) };
}
const pol = () => policy();

describe('DR path budget per node', () => {
  it('checks every unit every interval when they fit the budget', () => {
    const { l } = lane(3);
    const picked = pickUnits(l, initialLaneState(), [], 4, pol);
    assert.deepEqual(picked.map((u) => `${u.node} ${u.nodeAddress} ${u.vip}:${u.port}`), ['node-1 198.51.100.11 192.0.2.1:8000', 'node-1 198.51.100.11 192.0.2.2:8001', 'node-1 198.51.100.11 192.0.2.3:8002']);
  });

  it('sweeps a large node round-robin, a full round in units / budget intervals', () => {
    const { l } = lane(10);
    const ls = initialLaneState();
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) for (const u of pickUnits(l, ls, [], 4, pol)) seen.add(u.key);
    assert.equal(seen.size, 10);
  });

  it('re-probes failing units every interval first, and still moves the sweep on', () => {
    const { l, units } = lane(10);
    const ls = initialLaneState();
    const failing = units[6]!;
    const swept = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const picked = pickUnits(l, ls, [failing], 4, pol).map((u) => u.key);
      assert.equal(picked[0], failing.key);
      assert.equal(picked.length, 4);
      assert.equal(new Set(picked).size, 4);
      for (const k of picked.slice(1)) swept.add(k);
    }
    assert.equal(swept.size, 9, 'the sweep still reaches every other unit');
  });

  it('judges the whole node only when failures span several VIPs; one missing VIP fails only its own units', () => {
    const { l, units } = lane(4, 2);
    const one = initialLaneState();
    // VIP .1 fails, VIP .2 passes, interleaved as probes complete.
    for (let i = 0; i < 10; i++) for (const u of units) noteNodeResult(l, one, u, u.vip !== '192.0.2.1', 'timeout', T0 + i, 2, 3);
    assert.notEqual(one.node.status, 'down');
    const all = initialLaneState();
    for (let i = 0; i < 2; i++) for (const u of units) noteNodeResult(l, all, u, false, 'timeout', T0 + i, 2, 3);
    assert.equal(all.node.status, 'down');
    assert.match(all.node.lastError ?? '', /over 2 VIPs/);
    noteNodeResult(l, all, units[0]!, true, undefined, T0 + 10, 2, 3);
    assert.equal(all.node.status, 'down', 'rise needs two successes');
    noteNodeResult(l, all, units[1]!, true, undefined, T0 + 11, 2, 3);
    assert.equal(all.node.status, 'up');
  });
});

describe('drain lifecycle', () => {
  const web = vs('TCP/192.0.2.1:80');
  const other = vs('TCP/192.0.2.9:80');
  const desired: DesiredState = { virtualServices: [web, other], problems: [] };
  const downOn = (node: string) => ({
    verdict: (n: string, v: DesiredVirtualService) => (n === node && v.key === web.key ? { down: true, reasons: [`${n}: kube-proxy 198.51.100.12:10256/healthz: connection refused`] } : undefined),
    suspectNodes: new Set([node]),
  });
  const weights = (d: typeof desired) => d.virtualServices[0]!.realServers.map((r) => `${r.node}/${r.weight}/${r.state}`);

  it('drains a failed node to weight 0 first, and leaves untouched virtual services as they were', () => {
    const r = applyHealth(desired, { ...downOn('node-2'), lifecycle: new Map(), drained: () => false, now: T0, graceMs: 30_000 });
    assert.deepEqual(weights(r.desired), ['node-1/1/serving', 'node-2/0/draining-unhealthy', 'node-3/1/serving']);
    assert.equal(r.desired.virtualServices[1], other, 'same object');
    assert.equal(r.nextDeadline, T0 + 30_000);
    assert.deepEqual([...r.lifecycle.values()].map((l) => l.phase), ['draining']);
  });

  it('removes it after the grace period, or earlier once its connections are drained', () => {
    const first = applyHealth(desired, { ...downOn('node-2'), lifecycle: new Map(), drained: () => false, now: T0, graceMs: 30_000 });
    const still = applyHealth(desired, { ...downOn('node-2'), lifecycle: first.lifecycle, drained: () => false, now: T0 + 29_000, graceMs: 30_000 });
    assert.deepEqual(weights(still.desired), ['node-1/1/serving', 'node-2/0/draining-unhealthy', 'node-3/1/serving']);
    const graced = applyHealth(desired, { ...downOn('node-2'), lifecycle: still.lifecycle, drained: () => false, now: T0 + 30_000, graceMs: 30_000 });
    assert.deepEqual(weights(graced.desired), ['node-1/1/serving', 'node-3/1/serving']);
    const drained = applyHealth(desired, { ...downOn('node-2'), lifecycle: first.lifecycle, drained: (_p, since) => since === T0, now: T0 + 1000, graceMs: 30_000 });
    assert.deepEqual(weights(drained.desired), ['node-1/1/serving', 'node-3/1/serving']);
    assert.equal(drained.lifecycle.get('node-2|TCP/192.0.2.1:80')!.phase, 'removed');
  });

  it('serves a node again as soon as its verdict is up, from draining or removed', () => {
    const removed = new Map<string, Lifecycle>([['node-2|TCP/192.0.2.1:80', { phase: 'removed', since: T0, reasons: [] }]]);
    const r = applyHealth(desired, { verdict: () => undefined, suspectNodes: new Set(), lifecycle: removed, drained: () => false, now: T0 + 5000, graceMs: 30_000 });
    assert.deepEqual(weights(r.desired), ['node-1/1/serving', 'node-2/1/serving', 'node-3/1/serving']);
    assert.equal(r.lifecycle.size, 0);
  });

  it('never touches a node the model drains for NotReady', () => {
    const nr = vs('TCP/192.0.2.1:80', { servers: [rs('node-1', 1), rs('node-2', 2, 'draining-not-ready')] });
    const r = applyHealth({ virtualServices: [nr], problems: [] }, { ...downOn('node-2'), lifecycle: new Map(), drained: () => true, now: T0, graceMs: 0 });
    assert.deepEqual(r.desired.virtualServices[0]!.realServers.map((x) => x.state), ['serving', 'draining-not-ready']);
  });
});

describe('Events on the last healthy backend', () => {
  const a = vs('TCP/192.0.2.1:80', { service: 'default/web' });
  const b = vs('TCP/192.0.2.1:443', { service: 'default/web' });
  const none = (v: DesiredVirtualService) => ({ ...v, realServers: v.realServers.map((r) => ({ ...r, weight: 0, state: 'draining-unhealthy' as const })) });

  it('reports nothing while backends are healthy, one change per Service when the last goes, and one when one returns', () => {
    const start = backendTransitions(new Map(), [a, b], () => []);
    assert.deepEqual(start.changes, []);
    const lost = backendTransitions(start.next, [none(a), none(b)], () => ['node-1: kube-proxy 198.51.100.11:10256/healthz: HTTP 503']);
    assert.equal(lost.changes.length, 1);
    assert.equal(lost.changes[0]!.healthy, false);
    assert.match(lost.changes[0]!.message, /^TCP\/192\.0\.2\.1:443, TCP\/192\.0\.2\.1:80: no healthy node, new connections fail: node-1: kube-proxy .*HTTP 503/);
    assert.deepEqual(backendTransitions(lost.next, [none(a), none(b)], () => []).changes, [], 'no repeat while it stays so');
    const back = backendTransitions(lost.next, [a, none(b)], () => []);
    assert.deepEqual(back.changes.map((c) => `${c.healthy} ${c.vsKeys.join(',')}`), ['true TCP/192.0.2.1:80']);
    assert.match(back.changes[0]!.message, /traffic flows again \(3 healthy nodes\)/);
  });

  it('says nothing about a virtual service that has no candidate node at all (not yet, or none eligible)', () => {
    const empty = { ...a, realServers: [] };
    assert.deepEqual(backendTransitions(new Map(), [empty], () => []).changes, []);
    // All of its nodes removed by health: candidates remain, so that is reported.
    const removed = backendTransitions(new Map(), [empty], () => ['node-1: down'], () => 3);
    assert.equal(removed.changes.length, 1);
  });
});

describe('health-check annotations', () => {
  const d = { intervalSeconds: 2, timeoutSeconds: 1 };
  it('parses durations with or without units, counts and switches', () => {
    const r = healthCheckAnnotations({
      'ipvs-lb.io/health-check-interval': '500ms', 'ipvs-lb.io/health-check-timeout': '0.2', 'ipvs-lb.io/health-check-rise': '4',
      'ipvs-lb.io/health-check-fall': '1', 'ipvs-lb.io/health-check-dr-path': 'false',
    }, d);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.value, { drPath: false, intervalSeconds: 0.5, timeoutSeconds: 0.2, rise: 4, fall: 1 });
  });

  it('names the annotation and the value of each bad one, and keeps the good ones', () => {
    const r = healthCheckAnnotations({ 'ipvs-lb.io/health-check-rise': 'many', 'ipvs-lb.io/health-check': 'yes', 'ipvs-lb.io/health-check-fall': '2' }, d);
    assert.deepEqual(r.problems, [
      'annotation ipvs-lb.io/health-check must be true or false (got "yes")',
      'annotation ipvs-lb.io/health-check-rise must be an integer between 1 and 100 (got "many")',
    ]);
    assert.deepEqual(r.value, { fall: 2 });
  });

  it('refuses a timeout that is not below the interval, counting the config default', () => {
    const r = healthCheckAnnotations({ 'ipvs-lb.io/health-check-timeout': '3s' }, d);
    assert.deepEqual(r.problems, ['annotation ipvs-lb.io/health-check-timeout must leave the timeout (3s) less than the interval (2s) (got "3s")']);
    assert.deepEqual(r.value, {});
    const short = healthCheckAnnotations({ 'ipvs-lb.io/health-check-interval': '1' }, d);
    assert.equal(short.problems.length, 1);
    assert.deepEqual(short.value, {});
  });
});

describe('DR path marking rules', () => {
  const ranges = ['192.0.2.0/24', '198.51.100.1-198.51.100.3', '2001:db8:ff::/64'].map((t) => {
    const r = parseRange(t);
    assert.ok(r.ok);
    return r.range;
  });

  it('covers address ranges with exact CIDRs', () => {
    const r = parseRange('198.51.100.1-198.51.100.6');
    assert.ok(r.ok);
    assert.deepEqual(rangeToCidrs(4, r.range.first, r.range.last), ['198.51.100.1/32', '198.51.100.2/31', '198.51.100.4/31', '198.51.100.6/32']);
    assert.deepEqual(cidrsOf(ranges, 6), ['2001:db8:ff::/64']);
  });

  it('renders one nftables transaction that replaces the table, marking by source port block', () => {
    const text = renderNftRules({ ports: { first: 61000, last: 61999 }, probesPerNode: 4, fwmarkBase: 0x1b5a0000, slots: [1, 0], ranges });
    assert.equal(text, `table inet ipvs_lb_health {
}
delete table inet ipvs_lb_health
table inet ipvs_lb_health {
  # ipvs-lb DR path check: marks only the daemon's own probes (by source port) towards the pools, so that
  # the IPVS fwmark service of one node takes each. Replaced whole by the daemon.
  chain probe_marks {
    type route hook output priority mangle; policy accept;
    ip daddr { 192.0.2.0/24, 198.51.100.1/32, 198.51.100.2/31 } tcp sport 61000-61999 meta mark set tcp sport map { 61000-61003 : 0x1b5a0000, 61004-61007 : 0x1b5a0001 }
    ip6 daddr { 2001:db8:ff::/64 } tcp sport 61000-61999 meta mark set tcp sport map { 61000-61003 : 0x1b5a0000, 61004-61007 : 0x1b5a0001 }
  }
}
`);
  });

  it('renders an iptables-restore chain per family', () => {
    const text = renderIptablesRules({ ports: { first: 61000, last: 61999 }, probesPerNode: 4, fwmarkBase: 0x1b5a0000, slots: [0], ranges }, 6);
    assert.equal(text, '*mangle\n:IPVS-LB-HEALTH - [0:0]\n-A IPVS-LB-HEALTH -d 2001:db8:ff::/64 -p tcp -m tcp --sport 61000:61003 -j MARK --set-mark 0x1b5a0000\nCOMMIT\n');
  });
});

describe('healthCheck config', () => {
  it('has defaults for flap damping and the DR path', () => {
    assert.deepEqual(hc.flapDamping, { enabled: true, halfLifeSeconds: 60, suppressThreshold: 2.5, reuseThreshold: 1, maxSuppressSeconds: 600 });
    assert.deepEqual(hc.drPath, { marker: 'nft', fwmarkBase: 0x1b5a0000, sourcePorts: { first: 61000, last: 65535 }, probesPerNode: 4 });
  });

  it('names each wrong field and value', () => {
    const r = parseConfig({
      interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }],
      healthCheck: { flapDamping: { reuseThreshold: 5 }, drPath: { sourcePorts: '70000-1', marker: 'ebtables' } },
    });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems, [
      'healthCheck.flapDamping.reuseThreshold: must be less than healthCheck.flapDamping.suppressThreshold (2.5) (got 5)',
      'healthCheck.drPath.marker: must be one of nft, iptables-legacy (got "ebtables")',
      'healthCheck.drPath.sourcePorts: must be a port range FIRST-LAST within 1024-65535 (got "70000-1")',
    ]);
  });
});
