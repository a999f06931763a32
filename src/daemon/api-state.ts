// The daemon's implementation of the API's read and action surface, over its live parts.
import type { ApiState, AuditPage, HealthCheckView, HealthView, PoolUsage, RealServerView, ServiceView, StatusView, VirtualServiceView } from '../api/state.js';
import { allocationPage, allocationsOfAddress, allocationsOfUid, auditPage, poolUsage } from '../api/views.js';
import type { Config } from '../config/types.js';
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
  /** Probe verdicts of a real server (src/health); absent: health stays 'unknown'. */
  realServerHealth?: (node: string, vsKey: string) => { health: RealServerView['health']; checks: HealthCheckView[] };
  /** More reasons for /readyz messages (the health checker's). */
  extraMessages?: () => string[];
  status: () => StatusView;
  /** Why the API server counts as unreachable although the watches look connected (a silent server). */
  apiProblem?: () => string | undefined;
}

/** The kernel's views with each real server's probe verdict filled in. */
export function withHealth(views: VirtualServiceView[], healthOf: DaemonParts['realServerHealth']): VirtualServiceView[] {
  if (!healthOf) return views;
  return views.map((v) => ({
    ...v,
    realServers: v.realServers.map((r) => {
      if (!r.node) return r;
      const h = healthOf(r.node, v.key);
      return { ...r, health: h.health, checks: h.checks };
    }),
  }));
}

export function daemonApiState(p: DaemonParts): ApiState {
  return {
    pools: (): PoolUsage[] => poolUsage(p.config().pools, p.ipam.ipam),
    allocations: (f) => allocationPage(p.ipam.ipam, f),
    allocation: (address) => allocationsOfAddress(p.ipam.ipam, address),
    async service(namespace, name): Promise<ServiceView | undefined> {
      const svc = p.cluster.services.get(namespace, name);
      const uid = svc?.metadata?.uid;
      const allocations = uid ? allocationsOfUid(p.ipam.ipam, uid) : [];
      if (!svc || allocations.length === 0) return undefined;
      const id = `${namespace}/${name}`;
      const vss = withHealth((await p.dataPlane.virtualServices()).filter((v) => v.service === id), p.realServerHealth);
      return { namespace, name, allocations, virtualServices: vss, problems: p.problemsOf(id) };
    },
    virtualServices: async () => withHealth(await p.dataPlane.virtualServices(), p.realServerHealth),
    vrrp: () => p.dataPlane.vrrp(),
    events: (page): AuditPage => auditPage(p.ipam.ledger, page),
    health(): HealthView {
      const dp = p.dataPlane.health();
      const silent = p.apiProblem?.();
      const kubernetes = p.cluster.connected && silent === undefined;
      const messages = [...dp.messages, ...(p.extraMessages?.() ?? [])];
      if (!kubernetes) {
        const errs = p.cluster.stats.filter((s) => !s.connected).map((s) => `${s.kind}: ${s.lastError ?? 'not connected yet'}`);
        if (silent) errs.push(silent);
        messages.push(`Kubernetes API unreachable, serving the last programmed state (fail static): ${errs.join('; ')}`);
      }
      const checks = { ledger: true, kernel: dp.kernel, reconciledOnce: dp.reconciledOnce, kubernetes };
      return { ready: checks.ledger && checks.kernel && checks.reconciledOnce, checks, messages, ...(dp.sysctls ? { sysctls: dp.sysctls } : {}) };
    },
    status: () => p.status(),
    reconcile: () => p.reconcile(),
    reloadConfig: () => p.reload(),
    metrics: () => p.metrics().render(),
  };
}
