// From the candidate virtual services (the model's output before health is applied) to what must be probed:
// one HTTP target per (node, port) however many Services rely on it, and one DR unit per (node, virtual
// service), grouped per node so a per-node budget bounds the DR probes. Pure.
import type { HealthCheckConfig } from '../config/types.js';
import type { HealthCheckOverrides } from '../model/annotations.js';
import type { DesiredVirtualService } from '../model/types.js';
import { httpTargetKey, type DrLane, type HttpTarget, type Policy, type ProbePlan, type VsHealthPlan } from './types.js';

/** Distinct VIPs a failure streak must span before the whole node is judged (dr-lane.ts). */
export const NODE_VERDICT_VIPS = 3;

export const HEALTHZ_PATH = '/healthz';

export interface ResolvedPolicy extends Policy {
  enabled: boolean;
  drPath: boolean;
}

/** The config's values with a Service's annotations applied. */
export function resolvePolicy(hc: HealthCheckConfig, o: HealthCheckOverrides | undefined): ResolvedPolicy {
  const intervalMs = Math.round((o?.intervalSeconds ?? hc.intervalSeconds) * 1000);
  const timeoutMs = Math.round((o?.timeoutSeconds ?? hc.timeoutSeconds) * 1000);
  const rise = o?.rise ?? hc.rise;
  const fall = o?.fall ?? hc.fall;
  return {
    key: `${intervalMs}/${timeoutMs}/${rise}/${fall}`,
    intervalMs, timeoutMs, rise, fall,
    damping: hc.flapDamping.enabled ? hc.flapDamping : undefined,
    enabled: o?.enabled ?? true,
    drPath: hc.drPathCheck && (o?.drPath ?? true),
  };
}

export interface PlanOptions {
  config: HealthCheckConfig;
  /** The DR mechanism is in place on this host (kernel mode, marks and fwmark services ready). */
  drAvailable: boolean;
}

/** How one virtual service is checked (undefined: not at all); `policies` caches resolved policies by their
 * overrides across calls of one plan. */
export function vsHealthPlan(v: DesiredVirtualService, o: PlanOptions, policies = new Map<string, ResolvedPolicy>()): VsHealthPlan | undefined {
  const hc = o.config;
  if (!v.health) return undefined;
  const overrides = v.health.overrides;
  const sig = JSON.stringify(overrides);
  let policy = policies.get(sig);
  if (!policy) policies.set(sig, (policy = resolvePolicy(hc, overrides)));
  if (!policy.enabled) return undefined;
  let httpKind: VsHealthPlan['httpKind'];
  let httpPort: number | undefined;
  if (v.health.trafficPolicy === 'Local') {
    if (v.health.healthCheckNodePort !== undefined) {
      httpKind = 'service';
      httpPort = v.health.healthCheckNodePort;
    }
  } else if (hc.kubeProxyHealthPort !== undefined) {
    httpKind = 'kube-proxy';
    httpPort = hc.kubeProxyHealthPort;
  }
  const dr = o.drAvailable && policy.drPath && v.forwarding === 'dr' && v.protocol === 'TCP';
  if (!httpKind && !dr) return undefined;
  return { vsKey: v.key, policy, httpKind, httpPort, dr };
}

export function planProbes(vss: readonly DesiredVirtualService[], o: PlanOptions): ProbePlan {
  const http = new Map<string, HttpTarget>();
  const lanes = new Map<string, DrLane>();
  const vs = new Map<string, VsHealthPlan>();
  const policies = new Map<string, ResolvedPolicy>();
  // An HTTP target is per node, whatever family the virtual service has: prefer the node's IPv4 address,
  // since kube-proxy's health server listens on 0.0.0.0 by default.
  const v4Of = new Map<string, string>();
  // The kube-proxy target of a node, found without building its key for each of the node's Services.
  const kubeProxyOf = new Map<string, HttpTarget>();
  const lastVips = new Map<string, string[]>();

  for (const v of vss) {
    const p = vsHealthPlan(v, o, policies);
    if (!p) continue;
    vs.set(v.key, p);
    const { policy, httpKind, httpPort, dr } = p;

    for (const rs of v.realServers) {
      // NotReady nodes leave by the model's own drain; probing them would only add noise.
      if (rs.state !== 'serving') continue;
      if (httpKind && httpPort !== undefined) {
        let t = httpKind === 'kube-proxy' ? kubeProxyOf.get(rs.node) : undefined;
        if (!t) {
          const key = httpTargetKey(httpKind, rs.node, httpPort);
          t = http.get(key);
          if (!t) {
            t = { key, kind: httpKind, node: rs.node, address: rs.address, port: httpPort, path: HEALTHZ_PATH, policies: new Map(), intervalMs: policy.intervalMs, timeoutMs: policy.timeoutMs, consumers: 0 };
            http.set(key, t);
          }
          if (httpKind === 'kube-proxy') kubeProxyOf.set(rs.node, t);
        }
        if (!t.policies.has(policy.key)) {
          t.policies.set(policy.key, policy);
          t.intervalMs = Math.min(t.intervalMs, policy.intervalMs);
          t.timeoutMs = Math.max(t.timeoutMs, policy.timeoutMs);
        }
        t.consumers++;
        if (v.family === 4 && !v4Of.has(rs.node)) v4Of.set(rs.node, rs.address);
      }
      if (dr) {
        let lane = lanes.get(rs.node);
        if (!lane) {
          lanes.set(rs.node, (lane = { node: rs.node, vss: [], addresses: {}, vipCount: 0, intervalMs: policy.intervalMs, timeoutMs: policy.timeoutMs }));
          lastVips.set(rs.node, []);
        }
        lane.vss.push(v);
        lane.addresses[v.family] ??= rs.address;
        if (policy.intervalMs < lane.intervalMs) lane.intervalMs = policy.intervalMs;
        if (policy.timeoutMs > lane.timeoutMs) lane.timeoutMs = policy.timeoutMs;
        if (lane.vipCount < NODE_VERDICT_VIPS) {
          const seen = lastVips.get(rs.node)!;
          if (!seen.includes(v.vip)) {
            seen.push(v.vip);
            lane.vipCount++;
          }
        }
      }
    }
  }
  for (const t of http.values()) t.address = v4Of.get(t.node) ?? t.address;
  for (const lane of lanes.values()) {
    // The candidates come sorted by key; sort only if a caller passed them otherwise.
    let sorted = true;
    for (let i = 1; i < lane.vss.length && sorted; i++) if (lane.vss[i - 1]!.key > lane.vss[i]!.key) sorted = false;
    if (!sorted) lane.vss.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return { http, lanes, vs };
}
