// The daemon's implementation of the API's read and action surface, over its live parts.
import type { AllocationRow, ApiState, AuditPage, HealthView, PoolUsage, ServiceView } from '../api/state.js';
import type { Config } from '../config/types.js';
import type { Allocation } from '../ipam/types.js';
import type { DurableIpam } from '../store/allocator.js';
import type { ClusterWatcher } from '../watcher/cluster.js';
import type { DataPlane, ReconcileResult } from './dataplane.js';
import type { Metrics } from './metrics.js';

export interface DaemonParts {
  config: () => Config;
  ipam: DurableIpam;
  cluster: ClusterWatcher;
  dataPlane: DataPlane;
  metrics: () => Metrics;
  reconcile: () => Promise<ReconcileResult>;
  reload: () => Promise<{ ok: true; summary: string } | { ok: false; problems: string[] }>;
  problemsOf: (service: string) => string[];
}

export function allAllocations(ipam: DurableIpam): Allocation[] {
  const e = ipam.ipam;
  return e.uids().flatMap((uid) => e.allocationsOf(uid));
}

export function daemonApiState(p: DaemonParts): ApiState {
  const orphanedSet = () => {
    const s = new Set<string>();
    for (const list of p.ipam.ipam.orphans().values()) for (const o of list) s.add(o.address);
    return s;
  };
  const row = (a: Allocation, orphans: Set<string>): AllocationRow => ({
    address: a.address, family: a.family, pool: a.pool, namespace: a.namespace, name: a.name, uid: a.uid,
    sharingKey: a.sharingKey ?? null, ports: a.ports, allocatedAt: new Date(a.allocatedAt).toISOString(), orphaned: orphans.has(a.address),
  });
  return {
    pools(): PoolUsage[] {
      const stats = new Map(p.ipam.ipam.poolStats().map((s) => [s.name, s]));
      return p.config().pools.map((pool) => {
        const s = stats.get(pool.name);
        const size = s?.size ?? 0n;
        const used = s?.used ?? 0;
        return {
          name: pool.name, size: size.toString(), used, free: (size - BigInt(used) - BigInt(s?.quarantined ?? 0)).toString(),
          orphaned: s?.orphaned ?? 0, autoAssign: pool.autoAssign, addresses: pool.addresses.map((r) => r.text),
        };
      });
    },
    allocations(f) {
      const orphans = orphanedSet();
      const items = allAllocations(p.ipam)
        .filter((a) => (!f.namespace || a.namespace === f.namespace) && (!f.pool || a.pool === f.pool) && (!f.address || a.address === f.address))
        .sort((a, b) => (a.family - b.family) || (a.value < b.value ? -1 : a.value > b.value ? 1 : a.uid < b.uid ? -1 : 1));
      return { items: items.slice(f.offset, f.offset + f.limit).map((a) => row(a, orphans)), total: items.length, offset: f.offset, limit: f.limit };
    },
    allocation(address) {
      const orphans = orphanedSet();
      return allAllocations(p.ipam).filter((a) => a.address === address).map((a) => row(a, orphans));
    },
    async service(namespace, name): Promise<ServiceView | undefined> {
      const svc = p.cluster.services.get(namespace, name);
      const uid = svc?.metadata?.uid;
      const allocations = uid ? p.ipam.ipam.allocationsOf(uid) : [];
      if (!svc || allocations.length === 0) return undefined;
      const id = `${namespace}/${name}`;
      const orphans = orphanedSet();
      const vss = (await p.dataPlane.virtualServices()).filter((v) => v.service === id);
      return { namespace, name, allocations: allocations.map((a) => row(a, orphans)), virtualServices: vss, problems: p.problemsOf(id) };
    },
    virtualServices: () => p.dataPlane.virtualServices(),
    vrrp: () => p.dataPlane.vrrp(),
    events(page): AuditPage {
      const rows = p.ipam.ledger.audit({ limit: page.limit, beforeId: page.before });
      return {
        items: rows.map((r) => ({ id: r.id, at: new Date(r.at).toISOString(), action: r.action, reason: r.reason, service: r.service, address: r.address, pool: r.pool, host: r.host, term: r.term })),
        next: rows.length === page.limit ? rows[rows.length - 1]!.id : null,
      };
    },
    health(): HealthView {
      const dp = p.dataPlane.health();
      const kubernetes = p.cluster.connected;
      const messages = [...dp.messages];
      if (!kubernetes) {
        const errs = p.cluster.stats.filter((s) => !s.connected).map((s) => `${s.kind}: ${s.lastError ?? 'not connected yet'}`);
        messages.push(`Kubernetes API unreachable, serving the last programmed state (fail static): ${errs.join('; ')}`);
      }
      const checks = { ledger: true, kernel: dp.kernel, reconciledOnce: dp.reconciledOnce, kubernetes };
      return { ready: checks.ledger && checks.kernel && checks.reconciledOnce, checks, messages, ...(dp.sysctls ? { sysctls: dp.sysctls } : {}) };
    },
    reconcile: () => p.reconcile(),
    reloadConfig: () => p.reload(),
    metrics: () => p.metrics().render(),
  };
}
