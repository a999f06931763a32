// The health benchmark proper; health.bench.ts runs it under `unshare -n`, so every probe stays on the
// loopback of a network namespace that exists only for this run. Prints one JSON object.
//
// Scenario: 10,000 Services × 100 nodes, all IPv6 (2001:db8::/32 holds enough VIPs): 9,000 with
// externalTrafficPolicy Cluster on every node, 1,000 Local ones with endpoints on 3 nodes each (their own
// healthCheckNodePort), one TCP port each, DR forwarding, the DR path check on (budget 4 per node). The real
// HealthMonitor runs with the real HTTP and TCP probe adapters; only the DR kernel side (fwmark services,
// marks) is absent, since this machine has no IPVS: DR probes here are the plain TCP connects to the VIP.
// Baseline, measured in the same run: the naive checker, one HTTP probe per (virtual service, real server).
import { execFileSync, fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/schema.js';
import type { Config } from '../src/config/types.js';
import { HealthMonitor, type DrKernel } from '../src/health/monitor.js';
import { httpProbe } from '../src/health/probes.js';
import type { HttpTarget, ProbeOutcome } from '../src/health/types.js';
import type { DesiredState, DesiredVirtualService } from '../src/model/types.js';
import { createLogger } from '../src/util/log.js';
import { peakRssMb } from './harness.js';

const quick = process.argv.includes('--quick');
const SERVICES = 10_000;
const NODES = 100;
const LOCAL_SERVICES = 1_000;
const LOCAL_ENDPOINTS = 3;
const KUBE_PROXY = 10256;
const HCNP_FIRST = 30000;
const PORT = 8080;
const INTERVAL_S = 2;
const ROUNDS = quick ? 2 : 5;

const nodeIp = (n: number) => `2001:db8:100::${(n + 1).toString(16)}`;
const vip = (i: number) => `2001:db8:ff::${(Math.floor(i / 65536) + 1).toString(16)}:${(i % 65536).toString(16)}`;

function candidates(): DesiredState {
  const vss: DesiredVirtualService[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const local = i < LOCAL_SERVICES;
    const nodes = local ? Array.from({ length: LOCAL_ENDPOINTS }, (_, k) => (i * 7 + k * 31) % NODES) : Array.from({ length: NODES }, (_, n) => n);
    const v = vip(i);
    vss.push({
      key: `TCP/[${v}]:${PORT}`, vip: v, family: 6, protocol: 'TCP', port: PORT, scheduler: 'mh', schedulerFlags: ['mh-fallback', 'mh-port'],
      persistenceTimeoutSeconds: undefined, forwarding: 'dr', service: `bench/svc-${i}`, serviceUid: `uid-${i}`, pool: 'bench', vrrpGroup: undefined,
      realServers: nodes.sort((a, b) => a - b).map((n) => ({ address: nodeIp(n), port: PORT, weight: 1, node: `node-${String(n).padStart(3, '0')}`, state: 'serving' as const })),
      health: { trafficPolicy: local ? 'Local' : 'Cluster', healthCheckNodePort: local ? HCNP_FIRST + i : undefined, overrides: {} },
    });
  }
  vss.sort((a, b) => (a.key < b.key ? -1 : 1));
  return { virtualServices: vss, problems: [] };
}

function config(): Config {
  const r = parseConfig({
    interface: 'lo', vrrp: { enabled: false }, pools: [{ name: 'bench', addresses: ['2001:db8:ff::/64'] }],
    healthCheck: { intervalSeconds: INTERVAL_S, timeoutSeconds: 1, rise: 2, fall: 3, maxConcurrentProbes: 256 },
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

/** The DR kernel side without a kernel: port blocks and a source address, no marks (no IPVS here). */
function portsOnly(cfg: Config): DrKernel {
  const d = cfg.healthCheck.drPath;
  const slots = new Map<string, number>();
  const busy = new Set<number>();
  return {
    sync: async (lanes) => {
      [...lanes.keys()].sort().forEach((n, i) => slots.set(n, i));
      return { families: new Set([6]), problems: [] };
    },
    acquirePort: (node) => {
      const s = slots.get(node);
      if (s === undefined) return undefined;
      for (let p = d.sourcePorts.first + s * d.probesPerNode; p < d.sourcePorts.first + (s + 1) * d.probesPerNode; p++) {
        if (!busy.has(p)) {
          busy.add(p);
          return p;
        }
      }
      return undefined;
    },
    releasePort: (_n, p) => busy.delete(p),
    sourceAddress: () => '2001:db8:100::ffff',
    activeConnections: async () => new Map(),
    teardown: async () => undefined,
    close: () => undefined,
  };
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Runs `count` probes through `probe` with at most `concurrency` in flight; wall and CPU time. */
async function drive(count: number, concurrency: number, probe: (i: number) => Promise<ProbeOutcome>) {
  let next = 0;
  let failures = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const o = await probe(next++);
      if (!o.ok) failures++;
    }
  }));
  return { seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs() - c0, failures };
}

async function main(): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  // Every node address and VIP is local: one listening socket per port answers for all of them.
  for (const net of ['2001:db8:100::/64', '2001:db8:ff::/64']) execFileSync('ip', ['-6', 'route', 'add', 'local', net, 'dev', 'lo']);
  // The DR probes' source address must be assigned to be bound (a local route is not enough).
  execFileSync('ip', ['-6', 'addr', 'add', '2001:db8:100::ffff/128', 'dev', 'lo', 'nodad']);
  const targets = fork(fileURLToPath(new URL('./health-targets.js', import.meta.url)), [String(KUBE_PROXY), String(HCNP_FIRST), String(LOCAL_SERVICES), String(PORT)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    targets.once('message', () => resolve());
    targets.once('exit', (code) => reject(new Error(`target servers exited with ${code}`)));
  });

  const cfg = config();
  const desired = candidates();
  const realServers = desired.virtualServices.reduce((n, v) => n + v.realServers.length, 0);
  let probes = 0;
  let failed = 0;
  const reasons = new Map<string, number>();
  const monitor = new HealthMonitor({
    config: () => cfg, log: createLogger('silent'), kernel: portsOnly(cfg), onChange: () => undefined,
    onProbe: (kind, o) => {
      probes++;
      if (o.ok) return;
      failed++;
      const why = `${kind}: ${(o.error ?? 'failed').replace(/\d+ ms/, 'N ms').replace(/ - Local.*/, '')}`;
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    },
  });

  // The decision side at this size: planning from the candidates and applying verdicts, once each.
  monitor.start();
  let t = performance.now();
  monitor.setCandidates(desired.virtualServices);
  const planMs = performance.now() - t;
  await new Promise((r) => setTimeout(r, 100)); // the DR port slots are assigned asynchronously
  t = performance.now();
  monitor.apply(desired);
  const applyMs = performance.now() - t;
  const planned = monitor.probesPerInterval();

  // Steady state: the real monitor for ROUNDS intervals (after one warm-up interval).
  await new Promise((r) => setTimeout(r, INTERVAL_S * 1000));
  const p0 = probes;
  const f0 = failed;
  const c0 = cpuMs();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, ROUNDS * INTERVAL_S * 1000));
  const steadyProbes = probes - p0;
  const steadyCpu = cpuMs() - c0;
  const steadyWall = (performance.now() - w0) / 1000;
  const steadyFailed = failed - f0;
  await monitor.stop();
  const stats = monitor.stats();

  // Capacity of the same HTTP adapter at the same concurrency bound, flat out.
  const sampleTargets: HttpTarget[] = Array.from({ length: NODES }, (_, n) => ({ key: `k${n}`, kind: 'kube-proxy', node: `n${n}`, address: nodeIp(n), port: KUBE_PROXY, path: '/healthz', policies: new Map(), intervalMs: 2000, timeoutMs: 1000, consumers: 1 }));
  const sample = quick ? 5_000 : 20_000;
  const capacity = await drive(sample, cfg.healthCheck.maxConcurrentProbes, (i) => httpProbe(sampleTargets[i % NODES]!, 1000));

  // Baseline: the naive checker probes every (virtual service, real server) pair, each on its own port.
  const pairs = desired.virtualServices.flatMap((v) => v.realServers.map((r) => ({ v, r })));
  const naive = await drive(sample, cfg.healthCheck.maxConcurrentProbes, (i) => {
    const { v, r } = pairs[(i * 7919) % pairs.length]!;
    const port = v.health?.healthCheckNodePort ?? KUBE_PROXY;
    return httpProbe({ address: r.address, port, path: '/healthz' }, 1000);
  });
  targets.disconnect();

  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  const naivePerInterval = pairs.length;
  const naiveCpuPer1000 = (naive.cpuMs / sample) * 1000;
  const out = {
    services: SERVICES, nodes: NODES, real_servers: realServers, interval_s: INTERVAL_S, max_concurrent_probes: cfg.healthCheck.maxConcurrentProbes,
    probes_per_interval: round(steadyProbes / (steadyWall / INTERVAL_S), 0),
    planned_probes_per_interval: { http_targets: planned.http, dr_budget: planned.dr, total: planned.http + planned.dr },
    probes_per_s: round(steadyProbes / steadyWall, 0),
    cpu_ms_per_1000_probes: round((steadyCpu / steadyProbes) * 1000),
    cpu_share_of_one_core: round(steadyCpu / 1000 / steadyWall, 3),
    failed_probes: steadyFailed,
    failure_reasons: Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1]).slice(0, 4)),
    late_probes: stats.late,
    plan_ms: round(planMs), apply_ms: round(applyMs),
    capacity_probes_per_s: round(sample / capacity.seconds, 0),
    peak_rss_mb: peakRssMb(),
    load_avg_1m: round(loadavg()[0]!, 2),
    baseline: {
      naive_probes_per_interval: naivePerInterval,
      naive_probes_per_s_needed: round(naivePerInterval / INTERVAL_S, 0),
      naive_cpu_ms_per_1000_probes: round(naiveCpuPer1000),
      naive_cpu_s_per_interval: round((naiveCpuPer1000 * naivePerInterval) / 1000 / 1000),
      naive_round_s_at_measured_rate: round(naivePerInterval / (sample / naive.seconds)),
      naive_failed_in_sample: naive.failures,
      probes_ratio: round(naivePerInterval / (planned.http + planned.dr), 0),
    },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
process.exit(0);
