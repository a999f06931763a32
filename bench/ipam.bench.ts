// IPAM with its durable ledger: allocations per second for 100k Services over IPv4 pools and over an IPv6
// /64 (durable writes, one transaction per burst of 1,000), the time to reopen a 100k-allocation ledger and
// re-confirm every allocation (the start-up path), and peak memory.
// Baselines, measured in the same run: the same allocator committing one transaction (one fsync) per
// allocation, as a naive controller would; and a naive allocator that scans its pool from the start for
// every allocation.
// IPv4 addresses come from 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks (documentation
// ranges are too small for 100k Services). The ledger lives in a temp dir on disk so fsync is real.
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseConfigText } from '../src/config/load.js';
import type { PoolConfig } from '../src/config/types.js';
import { formatIp } from '../src/ipam/address.js';
import { parseService } from '../src/ipam/service.js';
import type { ServiceRequest } from '../src/ipam/types.js';
import { DurableIpam } from '../src/store/allocator.js';
import { defineBenchmark, peakRssMb } from './harness.js';

const T0 = Date.UTC(2026, 0, 1);
const BURST = 1000;

function pools(): PoolConfig[] {
  const r = parseConfigText(
    `interface: eth0
vrrp: {enabled: false}
pools:
  - name: bench-v4-a
    avoidBuggyIPs: true
    addresses: [198.18.0.0/16]
  - name: bench-v4-b
    avoidBuggyIPs: true
    addresses: [198.19.0.0/16]
  - name: bench-v6
    addresses: ['2001:db8:0:1::/64']
`,
    'bench',
  );
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.pools;
}

function services(n: number, family: 'IPv4' | 'IPv6', prefix: string): ServiceRequest[] {
  const out: ServiceRequest[] = [];
  for (let i = 0; i < n; i++) {
    const r = parseService({
      metadata: { uid: `${prefix}-${i}`, namespace: `ns-${i % 100}`, name: `svc-${i}` },
      spec: { ipFamilies: [family], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 443 }] },
    });
    if (!r.ok) throw new Error(r.refusal.message);
    out.push(r.service);
  }
  return out;
}

function allocateAll(d: DurableIpam, list: ServiceRequest[], burst: number): number {
  const t0 = performance.now();
  for (let i = 0; i < list.length; i += burst) {
    const decisions = d.ensure(list.slice(i, i + burst), { now: T0, term: 1 });
    for (const x of decisions) if (!x.ok) throw new Error(`${x.uid}: ${x.refusal?.message}`);
  }
  return performance.now() - t0;
}

/** The naive allocator: a set of taken addresses and a scan from the first address for every allocation. */
function naiveScan(n: number): number {
  const first = 0xc6120000n; // 198.18.0.0
  const taken = new Set<string>();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let v = first;
    while (taken.has(formatIp({ family: 4, value: v })) || (v & 255n) === 0n || (v & 255n) === 255n) v++;
    taken.add(formatIp({ family: 4, value: v }));
  }
  return performance.now() - t0;
}

const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;

export default defineBenchmark({
  name: 'ipam',
  description: 'allocations/s for 100k Services (IPv4 pools, IPv6 /64) with durable batched writes; reopen + re-confirm of 100k',
  async run({ quick }) {
    const n = quick ? 20_000 : 100_000;
    const dir = mkdtempSync(join(process.env.IPVS_LB_BENCH_DIR ?? tmpdir(), 'ipvs-lb-bench-ipam-'));
    const fsType = statfsSync(dir).type;
    try {
      const p = pools();
      let v4: ServiceRequest[] = services(n, 'IPv4', 'v4');

      const pathV4 = join(dir, 'v4.db');
      let d = DurableIpam.open({ path: pathV4, host: 'bench', pools: p, quarantineSeconds: 60, now: T0 });
      const v4Ms = allocateAll(d, v4, BURST);
      d.close();

      const t1 = performance.now();
      const cpu1 = process.cpuUsage();
      d = DurableIpam.open({ path: pathV4, host: 'bench', pools: p, quarantineSeconds: 60, now: T0 + 1000 });
      const report = d.start(v4, { now: T0 + 1000, term: 2, allocateNew: true });
      const reconfirmMs = performance.now() - t1;
      // CPU time as well as wall time: on a shared machine the wall clock also measures the neighbours.
      const cpu = process.cpuUsage(cpu1);
      const reconfirmCpuMs = (cpu.user + cpu.system) / 1000;
      if (report.confirmed.length !== n || report.decided.length !== 0) throw new Error('re-confirmation changed allocations');
      d.close();

      const v4Sample = v4.slice(0, quick ? 500 : 2000);
      // The daemon holds one Service list, not two: let the IPv4 one go before building the IPv6 one.
      v4 = [];
      const v6 = services(n, 'IPv6', 'v6');
      const pathV6 = join(dir, 'v6.db');
      d = DurableIpam.open({ path: pathV6, host: 'bench', pools: p, quarantineSeconds: 60, now: T0 });
      const v6Ms = allocateAll(d, v6, BURST);
      const lastV6 = d.ipam.allocationsOf(v6.at(-1)!.uid)[0]!.address;
      d.close();

      // Baseline 1: one durable transaction per allocation (a sample: at one fsync each, 100k would take minutes).
      const sample = v4Sample.length;
      d = DurableIpam.open({ path: join(dir, 'per-allocation.db'), host: 'bench', pools: p, quarantineSeconds: 60, now: T0 });
      const perTxnMs = allocateAll(d, v4Sample, 1);
      d.close();

      // Baseline 2: a naive scanning allocator, in memory only, for 10k allocations (it is quadratic).
      const naiveN = quick ? 5000 : 10_000;
      const naiveMs = naiveScan(naiveN);

      const perSecV4 = n / (v4Ms / 1000);
      const perSecV6 = n / (v6Ms / 1000);
      const perTxnPerSec = sample / (perTxnMs / 1000);
      const naivePerSec = naiveN / (naiveMs / 1000);
      return {
        services: n,
        burst: BURST,
        allocations_per_s_v4: round(perSecV4),
        allocations_per_s_v6: round(perSecV6),
        reconfirm_100k_ms: round(reconfirmMs, 1),
        reconfirm_100k_cpu_ms: round(reconfirmCpuMs, 1),
        load_average_1m: round(loadavg()[0] ?? 0, 1),
        reconfirm_services: n,
        peak_rss_mb: peakRssMb(),
        last_v6_address: lastV6,
        ratio_v4_vs_per_allocation_txn: round(perSecV4 / perTxnPerSec, 1),
        ratio_v6_vs_per_allocation_txn: round(perSecV6 / perTxnPerSec, 1),
        ratio_v4_vs_naive_scan: round(perSecV4 / naivePerSec, 1),
        ledger_fs_magic: `0x${fsType.toString(16)}`,
        baseline: {
          per_allocation_txn_allocations_per_s: round(perTxnPerSec),
          per_allocation_txn_sample: sample,
          naive_scan_allocations_per_s: round(naivePerSec),
          naive_scan_allocations: naiveN,
        },
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
