// The health monitor's wiring of plan, scheduler, state machines and drain lifecycle, with probe adapters and
// the DR kernel side replaced by recorders (the real ones are exercised in test/lab/health.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import type { BackendsChange } from '../../src/health/backends.js';
import { HealthMonitor, type DrKernel } from '../../src/health/monitor.js';
import type { HttpTarget, ProbeOutcome } from '../../src/health/types.js';
import { createLogger } from '../../src/util/log.js';
import type { DesiredState, DesiredVirtualService } from '../../src/model/types.js';
import { poll } from '../../lab/poll.js';

function config(over: Record<string, unknown> = {}): Config {
  const r = parseConfig({
    interface: 'eth0', vrrp: { enabled: false }, pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }],
    healthCheck: { intervalSeconds: 0.1, timeoutSeconds: 0.05, rise: 2, fall: 2, drainGraceSeconds: 3600, maxConcurrentProbes: 4, flapDamping: { enabled: false }, ...over },
  });
  assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
  return r.config;
}

const NODES = ['node-1', 'node-2', 'node-3'];
function vs(i: number, policy: 'Cluster' | 'Local' = 'Cluster'): DesiredVirtualService {
  return {
    key: `TCP/192.0.2.${i}:80`, vip: `192.0.2.${i}`, family: 4, protocol: 'TCP', port: 80, scheduler: 'rr', schedulerFlags: [], persistenceTimeoutSeconds: undefined,
    forwarding: 'dr', service: `default/svc-${i}`, serviceUid: `uid-${i}`, pool: 'default', vrrpGroup: undefined,
    realServers: NODES.map((node, n) => ({ address: `198.51.100.${11 + n}`, port: 80, weight: 1, node, state: 'serving' as const })),
    health: { trafficPolicy: policy, healthCheckNodePort: policy === 'Local' ? 31000 + i : undefined, overrides: {} },
  };
}

const until = <T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> => poll(what, check, { timeoutMs, everyMs: 10 });

function harness(o: { config?: Config; kernel?: DrKernel; failing?: Set<string>; delayMs?: number } = {}) {
  const cfg = o.config ?? config();
  const failing = o.failing ?? new Set<string>();
  const calls = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  const changes: BackendsChange[] = [];
  let changed = 0;
  const http = async (t: HttpTarget): Promise<ProbeOutcome> => {
    calls.set(t.key, (calls.get(t.key) ?? 0) + 1);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, o.delayMs ?? 1));
    inFlight--;
    return failing.has(t.node) ? { ok: false, latencyMs: 1, error: 'HTTP 503' } : { ok: true, latencyMs: 1 };
  };
  const m = new HealthMonitor({ config: () => cfg, log: createLogger('silent'), http, kernel: o.kernel, onChange: () => changed++, onBackends: (c) => changes.push(...c) });
  return { m, calls, failing, changes, changedCount: () => changed, maxInFlight: () => maxInFlight };
}

const weights = (d: DesiredState, key: string) => d.virtualServices.find((v) => v.key === key)!.realServers.map((r) => `${r.node}/${r.weight}`).join(' ');

describe('health monitor', () => {
  it('probes each node\'s kube-proxy once per round for fifty Services, within the concurrency bound', async () => {
    const h = harness({ delayMs: 20 });
    const candidates: DesiredState = { virtualServices: Array.from({ length: 50 }, (_, i) => vs(i + 1)), problems: [] };
    h.m.start();
    h.m.setCandidates(candidates.virtualServices);
    try {
      await until('three rounds', () => ([...h.calls.values()].every((n) => n >= 3) && h.calls.size === 3 ? true : undefined));
      assert.deepEqual([...h.calls.keys()].sort(), NODES.map((n) => `kube-proxy|${n}|10256`));
      assert.ok(h.maxInFlight() <= 4);
      assert.deepEqual(h.m.probesPerInterval(), { http: 3, dr: 0 });
    } finally {
      await h.m.stop();
    }
  });

  it('drains a failing node to weight 0 in every Service that relies on it, and serves it again after rise', async () => {
    const h = harness({ failing: new Set(['node-2']) });
    const candidates: DesiredState = { virtualServices: [vs(1), vs(2)], problems: [] };
    h.m.start();
    h.m.setCandidates(candidates.virtualServices);
    try {
      await until('node-2 drained', () => (weights(h.m.apply(candidates), 'TCP/192.0.2.1:80') === 'node-1/1 node-2/0 node-3/1' ? true : undefined));
      assert.equal(weights(h.m.apply(candidates), 'TCP/192.0.2.2:80'), 'node-1/1 node-2/0 node-3/1');
      const view = h.m.view('node-2', 'TCP/192.0.2.1:80');
      assert.equal(view.health, 'down');
      assert.equal(view.phase, 'draining');
      assert.deepEqual(view.checks.map((c) => `${c.kind} ${c.target} ${c.state} ${c.lastError}`), ['kube-proxy 198.51.100.12:10256/healthz down HTTP 503']);
      assert.ok(h.changedCount() > 0, 'asked the daemon to recompute');
      assert.deepEqual(h.changes, [], 'other nodes still serve: no Event');
      h.failing.clear();
      await until('node-2 back', () => (weights(h.m.apply(candidates), 'TCP/192.0.2.1:80') === 'node-1/1 node-2/1 node-3/1' ? true : undefined));
      assert.ok(h.m.view('node-2', 'TCP/192.0.2.1:80').checks[0]!.consecutiveSuccesses >= 2);
    } finally {
      await h.m.stop();
    }
  });

  it('reports the Service whose last healthy node goes, and again when one returns', async () => {
    const h = harness({ failing: new Set(NODES) });
    const candidates: DesiredState = { virtualServices: [vs(1, 'Local')], problems: [] };
    h.m.start();
    h.m.setCandidates(candidates.virtualServices);
    try {
      await until('no healthy node', () => (h.m.apply(candidates), h.changes.length > 0 ? true : undefined));
      assert.equal(h.changes[0]!.healthy, false);
      assert.equal(h.changes[0]!.service, 'default/svc-1');
      assert.match(h.changes[0]!.message, /no healthy node.*healthCheckNodePort 198\.51\.100\.1\d:31001\/healthz: HTTP 503/);
      h.failing.delete('node-3');
      await until('one back', () => (h.m.apply(candidates), h.changes.length > 1 ? true : undefined));
      assert.equal(h.changes[1]!.healthy, true);
    } finally {
      await h.m.stop();
    }
  });

  it('removes a draining node once the kernel shows no active connection on it', async () => {
    const asked: string[] = [];
    const kernel: DrKernel = {
      sync: async () => ({ families: new Set(), problems: [] }),
      acquirePort: () => undefined, releasePort: () => undefined, sourceAddress: () => undefined,
      activeConnections: async (w) => {
        asked.push(...w.map((x) => x.vsKey));
        return new Map([['TCP/192.0.2.1:80|198.51.100.12', 0]]);
      },
      teardown: async () => undefined, close: () => undefined,
    };
    const h = harness({ failing: new Set(['node-2']), kernel, config: config({ drPathCheck: false }) });
    const candidates: DesiredState = { virtualServices: [vs(1)], problems: [] };
    h.m.start();
    h.m.setCandidates(candidates.virtualServices);
    try {
      await until('node-2 removed', () => (weights(h.m.apply(candidates), 'TCP/192.0.2.1:80') === 'node-1/1 node-3/1' ? true : undefined));
      assert.ok(asked.includes('TCP/192.0.2.1:80'));
      assert.equal(h.m.view('node-2', 'TCP/192.0.2.1:80').phase, 'removed');
      assert.equal(h.m.stats().removed, 1);
    } finally {
      await h.m.stop();
    }
  });

  it('probes nothing and changes nothing before it is started (a --no-kernel daemon never starts it)', () => {
    const h = harness({ failing: new Set(NODES) });
    const candidates: DesiredState = { virtualServices: [vs(1)], problems: [] };
    h.m.setCandidates(candidates.virtualServices);
    assert.equal(h.m.apply(candidates), candidates);
    assert.deepEqual(h.m.probesPerInterval(), { http: 0, dr: 0 });
  });

  it('does nothing when health checking is off', async () => {
    const h = harness({ config: config({ enabled: false }), failing: new Set(NODES) });
    const candidates: DesiredState = { virtualServices: [vs(1)], problems: [] };
    h.m.start();
    h.m.setCandidates(candidates.virtualServices);
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(h.calls.size, 0);
      assert.equal(h.m.apply(candidates), candidates);
    } finally {
      await h.m.stop();
    }
  });
  it('patchCandidates: verdicts reach a new Service at once, its own probes follow, and an Event is not repeated', async () => {
    const h = harness({ failing: new Set(['node-2']) });
    h.m.start();
    h.m.setCandidates([vs(1)]);
    try {
      await until('node-2 drained', () => (weights(h.m.apply({ virtualServices: [vs(1)], problems: [] }), 'TCP/192.0.2.1:80') === 'node-1/1 node-2/0 node-3/1' ? true : undefined));
      // A Service added on its own gets the verdicts the nodes already have.
      const [two] = h.m.patchCandidates([vs(2)], []);
      assert.equal(two!.realServers.map((r) => `${r.node}/${r.weight}`).join(' '), 'node-1/1 node-2/0 node-3/1');
      assert.equal(h.m.view('node-2', 'TCP/192.0.2.2:80').phase, 'draining');
      // A Local Service's healthCheckNodePort is probed once the plan follows (one replan for the burst).
      h.m.patchCandidates([vs(3, 'Local')], []);
      await until('the new Service probed', () => (h.calls.has('service|node-1|31003') ? true : undefined));
      // Every node of a Local Service failing: one NoHealthyBackends, not one per patch of the same Service.
      for (const n of NODES) h.failing.add(n);
      await until('no healthy node', () => (h.m.apply({ virtualServices: [vs(1), vs(2), vs(3, 'Local')], problems: [] }), h.changes.some((c) => c.service === 'default/svc-3') ? true : undefined));
      const before = h.changes.length;
      h.m.patchCandidates([vs(3, 'Local')], []);
      h.m.patchCandidates([vs(3, 'Local')], []);
      assert.equal(h.changes.length, before, 'no second Event for the same state');
      // A removed Service leaves its lifecycle behind.
      h.m.patchCandidates([], ['TCP/192.0.2.2:80']);
      assert.equal(h.m.view('node-2', 'TCP/192.0.2.2:80').phase, 'serving');
    } finally {
      await h.m.stop();
    }
  });
});
