// `npm run bench -- k8s`: 10,000 Services of type LoadBalancer created in one burst against the API
// simulator, served by the real daemon (subprocess, --no-kernel: this measures the control plane, the kernel
// side has its own figures in docs/kernel.md). `--quick` uses 1,000.
//
// Figures:
// - all_status_written_s: from the first creation until the last Service shows its address (seen by a
//   separate watch, as a user's `kubectl get svc -w` would).
// - p50/p99_create_to_status_ms: per Service, creation to address seen. With 10,000 Services at QPS 200 the
//   p99 is dominated by the QPS budget (the 10,000th write cannot happen before ~50 s); that is the point.
// - qps_utilisation: status writes per second once the burst allowance is spent, divided by the configured
//   QPS. The first `burst` writes can go out faster than QPS, so they are left out of the rate: it is taken
//   from the time the (burst+1)th address appeared to the time the last did. 1.0 means the QPS budget is the
//   only limit; below means something else (CPU, the simulator, the daemon's own pacing) held it back.
// - decision_p99_ms: allocator decision plus durable ledger write, per Service: the duration of the
//   transaction that decided it (the daemon decides in chunks, one fsync each), from the daemon's histogram
//   (Prometheus-style interpolation inside the bucket); decision_within_10ms is the exact share of Services
//   whose transaction took at most 10 ms (a bucket bound).
// - api_requests: every request the simulator received from the burst until the daemon went idle (the
//   Events, which wait behind the status writes, included), by verb and resource; also counted until the
//   last status.
// - memory: the daemon's resident set (VmRSS, and VmHWM as the peak) idle, after the 10,000 Services, after
//   500 nodes joined (every virtual service then has 500 real servers), and after node churn; and its live
//   heap after the last full garbage collection of each phase (--trace-gc; null when V8 ran none in that phase),
//   which is what it really holds: V8 lets garbage pile up to a few hundred MB before it compacts, and RSS
//   counts that too.
//
// Baseline, same run: how fast the simulator takes status patches from an unthrottled client, so a reader can
// see whether the simulator, not the daemon, was the limit (ratio_sim_capacity_to_qps well above 1 is needed).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import { Cluster, KubeSim } from '../lab/kube-sim/index.js';
import { makeKubeClients } from '../src/watcher/client.js';
import { startDaemon, type DaemonHandle } from '../test/support/daemon.js';
import { defineBenchmark, percentile } from './harness.js';
import { poll } from '../lab/poll.js';

const QPS = 200;
const BURST = 400;
const NODES = 500;

interface Bucket { le: number; n: number }

function histogram(metrics: string, name: string): Bucket[] {
  return [...metrics.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), n: Number(m[2]) }));
}

/** histogram_quantile(): linear inside the bucket that holds the quantile, in ms. */
function quantileMs(buckets: Bucket[], q: number): number {
  const total = buckets.at(-1)?.n ?? 0;
  if (total === 0) return NaN;
  const want = q * total;
  let prevLe = 0;
  let prevN = 0;
  for (const b of buckets) {
    if (b.n >= want) {
      if (b.le === Infinity) return prevLe * 1000;
      return (prevLe + ((b.le - prevLe) * (want - prevN)) / Math.max(1, b.n - prevN)) * 1000;
    }
    prevLe = b.le;
    prevN = b.n;
  }
  return NaN;
}

/**
 * The V8 heap still in use after the daemon's last full garbage collection (from --trace-gc lines in its log):
 * what the daemon really holds. RSS also counts garbage V8 has not collected yet, because nothing pressed it.
 */
function fullGcs(d: DaemonHandle): string[] {
  return d.log().match(/Mark-Compact[^\n]*?-> ([\d.]+) \(/g) ?? [];
}

/** The live heap after the last full collection since `since` full collections had happened; null if none. */
function liveHeapMb(d: DaemonHandle, since: number): number | null {
  const lines = fullGcs(d);
  if (lines.length <= since) return null;
  return Math.round(Number(/-> ([\d.]+) \(/.exec(lines.at(-1)!)![1]));
}

function memoryMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), hwm: Math.round(kb('VmHWM') / 1024) };
}

const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  await poll(what, async () => ((await check()) ? true : undefined), { timeoutMs, everyMs: 100, prefix: 'bench k8s: timed out waiting for' });
}

/** Waits until the daemon has nothing left to do: its status queue is empty and its CPU time stops growing. */
async function settled(d: DaemonHandle): Promise<void> {
  const cpu = () => {
    const f = readFileSync(`/proc/${d.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  let last = cpu();
  for (let i = 0; i < 600; i++) {
    await sleep(1000);
    const now = cpu();
    // Less than 5 % of a core over the last second.
    if (now - last < 5) return;
    last = now;
  }
}

export default defineBenchmark({
  name: 'k8s',
  description: '10,000 Services in a burst: time to all statuses, p99 create-to-status, API requests, QPS utilisation, daemon memory with 500 nodes',
  async run({ quick }) {
    const count = quick ? 1000 : 10_000;
    const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-bench-k8s-'));
    const sim = await KubeSim.start({ historyWindow: count * 4, serviceCIDRs: ['203.0.113.128/25', '2001:db8:5e::/108'] });
    const timers: NodeJS.Timeout[] = [];
    try {
      const kubeconfig = await sim.writeKubeconfig(join(dir, 'kubeconfig'));
      const cluster = new Cluster(sim);
      // Dual-stack nodes: the Services are IPv6 (a /64 pool holds 10,000), and every node can carry them.
      const addNode = (i: number) => cluster.addNode(`node-${i}`, { internalIP: [`198.51.100.${(i % 250) + 1}`, `2001:db8:1::${(i + 1).toString(16)}`] });
      for (let i = 0; i < 3; i++) addNode(i);
      for (const ns of ['ipvs-lb', 'baseline', 'bench']) sim.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });

      // Baseline: unthrottled status patches from a client built like the daemon's (kept-alive connections),
      // 16 in flight as the daemon's status workers, on Services that two watchers see (the daemon and this
      // benchmark watch every Service).
      const { core } = makeKubeClients({ kubeconfig, inCluster: false, qps: QPS, burst: BURST });
      const baseN = quick ? 400 : 1000;
      for (let i = 0; i < baseN; i++) sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: `base-${i}`, namespace: 'baseline' }, spec: { type: 'ClusterIP', clusterIP: 'None', ports: [{ port: 80 }] } });
      const baseWatches = await Promise.all([0, 1].map(() => new Watch(sim.kubeConfig()).watch('/api/v1/services', {}, () => undefined, () => undefined)));
      const b0 = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < baseN) {
          const i = next++;
          await core.patchNamespacedServiceStatus({ name: `base-${i}`, namespace: 'baseline', body: { status: { loadBalancer: { ingress: [{ ip: '203.0.113.1' }] } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        }
      }));
      const simPatchesPerS = baseN / ((performance.now() - b0) / 1000);
      for (const w of baseWatches) w.abort();

      const daemon = await startDaemon({ name: 'lb1', dir: join(dir, 'lb1'), kubeconfig, nodeArgs: ['--trace-gc'], config: {
        kubernetes: { kubeconfig, qps: QPS, burst: BURST, lease: { durationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 } },
        pools: [{ name: 'bench', addresses: ['2001:db8:ffff::/64'] }, { name: 'v4', addresses: ['198.51.100.0/24', '203.0.113.0/24'] }],
      } });
      try {
        // Leadership and the first reconcile first, so the burst measures allocation, not the start-up.
        await until('leadership', () => (sim.get('coordination.k8s.io/v1', 'Lease', 'ipvs-lb-allocator', 'ipvs-lb') as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity === 'lb1', 60_000);
        await until('ready', async () => (await daemon.api<{ ready: boolean }>('/readyz')).body.ready, 60_000);
        await settled(daemon);
        const idle = memoryMb(daemon.child.pid!);

        const seen = new Map<string, number>();
        const created = new Map<string, number>();
        let done!: () => void;
        const all = new Promise<void>((r) => (done = r));
        const watch = await new Watch(sim.kubeConfig()).watch('/api/v1/namespaces/bench/services', {}, (_t: string, obj: { metadata: { name: string }; status?: { loadBalancer?: { ingress?: unknown[] } } }) => {
          if (obj.status?.loadBalancer?.ingress?.length && !seen.has(obj.metadata.name)) {
            seen.set(obj.metadata.name, performance.now());
            if (seen.size === count) done();
          }
        }, () => undefined);
        // The daemon's bucket is full again after the idle wait above.
        sim.resetCounts();
        const gcsAtBurst = fullGcs(daemon).length;
        const t0 = performance.now();
        timers.push(setInterval(() => process.stderr.write(`bench k8s: ${seen.size}/${count} statuses after ${Math.round((performance.now() - t0) / 1000)} s (daemon log: ${daemon.dir}/daemon.log)\n`), 10_000));
        for (let i = 0; i < count; i++) {
          const name = `svc-${i}`;
          sim.create({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'bench' }, spec: { type: 'LoadBalancer', ipFamilies: ['IPv6'], allocateLoadBalancerNodePorts: false, ports: [{ port: 80 }] } });
          created.set(name, performance.now());
        }
        await Promise.race([all, new Promise((_, reject) => timers.push(setTimeout(() => reject(new Error(`only ${seen.size} of ${count} statuses after 15 minutes`)), 900_000)))]);
        const totalS = (performance.now() - t0) / 1000;
        watch.abort();
        const countsAtStatus = sim.requestCounts();
        const latencies = [...seen].map(([n, t]) => t - created.get(n)!).sort((a, b) => a - b);
        const times = [...seen.values()].sort((a, b) => a - b);
        const steadyFrom = Math.min(BURST, times.length - 2);
        const steadyWritesPerS = (times.length - 1 - steadyFrom) / ((times.at(-1)! - times[steadyFrom]!) / 1000);
        const statusPatches = countsAtStatus['patch services/status'] ?? 0;

        // The Services' Events follow the statuses at lower priority; let the daemon finish them.
        for (const t of timers.splice(0)) clearTimeout(t);
        await until('every IPAllocated Event', () => (sim.requestCounts()['create events'] ?? 0) >= count, 600_000);
        await settled(daemon);
        const counts = sim.requestCounts();
        const metrics = await (await fetch(`http://127.0.0.1:${daemon.port}/metrics`)).text();
        const decisions = histogram(metrics, 'ipvs_lb_allocation_decision_seconds');
        const within10 = (decisions.find((b) => b.le === 0.01)?.n ?? 0) / (decisions.at(-1)?.n || 1);
        const afterServices = memoryMb(daemon.child.pid!);
        const heapAfterServices = liveHeapMb(daemon, gcsAtBurst);
        const gcsAtNodes = fullGcs(daemon).length;
        for (let i = 3; i < NODES; i++) addNode(i);
        const n0 = performance.now();
        // From the daemon's debug log, not its API: listing 5 million real servers would itself cost memory.
        const want = `"virtualServices":${count},"realServers":${count * NODES},`;
        await until('500 nodes in the desired state', () => daemon.log().includes(want), 600_000);
        const nodesS = (performance.now() - n0) / 1000;
        const computeMs = Number(new RegExp(`${want}"ms":(\\d+)`).exec(daemon.log())?.[1]);
        await settled(daemon);
        const afterNodes = memoryMb(daemon.child.pid!);
        const heapAfterNodes = liveHeapMb(daemon, gcsAtNodes);
        const gcsAtChurn = fullGcs(daemon).length;
        // Churn: a tenth of the nodes go NotReady and come back, twice.
        for (let round = 0; round < 2; round++) {
          for (const ready of [false, true]) {
            for (let i = 0; i < NODES; i += 10) cluster.setNodeReady(`node-${i}`, ready);
            await sleep(2000);
          }
        }
        await settled(daemon);
        const afterChurn = memoryMb(daemon.child.pid!);
        const heapAfterChurn = liveHeapMb(daemon, gcsAtChurn);
        // The one look at the whole desired state, after the measurements: every Service has every node.
        const sample = (await daemon.api<{ virtualServices?: { realServers: unknown[] }[] }>(`/api/v1/services/bench/svc-${count - 1}`)).body;
        if (sample.virtualServices?.[0]?.realServers.length !== NODES) throw new Error(`bench k8s: svc-${count - 1} has ${sample.virtualServices?.[0]?.realServers.length} real servers, not ${NODES}`);

        return {
          services: count,
          all_status_written_s: round(totalS, 1),
          p50_create_to_status_ms: Math.round(percentile(latencies, 50)),
          p99_create_to_status_ms: Math.round(percentile(latencies, 99)),
          api_requests_until_all_status: Object.values(countsAtStatus).reduce((a, b) => a + b, 0),
          api_requests: Object.values(counts).reduce((a, b) => a + b, 0),
          api_requests_by_kind: counts,
          status_patches_per_service: round(statusPatches / count, 3),
          steady_status_writes_per_s: round(steadyWritesPerS, 1),
          configured_qps: QPS,
          configured_burst: BURST,
          qps_utilisation: round(steadyWritesPerS / QPS, 2),
          decision_p50_ms: round(quantileMs(decisions, 0.5), 2),
          decision_p99_ms: round(quantileMs(decisions, 0.99), 2),
          decision_within_10ms: round(within10, 4),
          nodes: NODES,
          nodes_joined_to_desired_state_s: round(nodesS, 1),
          desired_state_compute_ms_500_nodes: computeMs,
          daemon_rss_mb: { idle: idle.rss, after_services: afterServices.rss, after_500_nodes: afterNodes.rss, after_node_churn: afterChurn.rss, peak: afterChurn.hwm },
          daemon_live_heap_mb: { after_services: heapAfterServices, after_500_nodes: heapAfterNodes, after_node_churn: heapAfterChurn },
          load_average_1m: round(loadavg()[0]!, 2),
          baseline: { sim_unthrottled_status_patches_per_s: Math.round(simPatchesPerS), ratio_sim_capacity_to_qps: round(simPatchesPerS / QPS, 1) },
        };
      } finally {
        await daemon.stop();
      }
    } finally {
      for (const t of timers) clearTimeout(t);
      await sim.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
