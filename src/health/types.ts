// The vocabulary of backend health: what is probed, how a result is judged, and the verdicts that flow into
// the desired state. Everything here is data; the decisions are in state.ts, plan.ts, dr-lane.ts and apply.ts.
import type { FlapDampingConfig } from '../config/types.js';
import type { Family } from '../ipam/address.js';
import type { DesiredVirtualService } from '../model/types.js';

/** kube-proxy's node health port (Cluster), a Service's healthCheckNodePort (Local), or the DR path check. */
export type ProbeKind = 'kube-proxy' | 'service' | 'dr';

export type Status = 'unknown' | 'up' | 'down';

/** How one Service wants its backends judged: the config's values with its annotations applied. */
export interface Policy {
  /** `intervalMs/timeoutMs/rise/fall`: Services with equal policies share one state per target. */
  key: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  damping: FlapDampingConfig | undefined;
}

/** What one probe saw. */
export interface ProbeOutcome {
  ok: boolean;
  latencyMs: number;
  /** Why it failed, in words an operator can act on ("HTTP 503", "connection refused", "timeout after 1000 ms"). */
  error?: string;
  /**
   * The prober itself could not try (no free source port, no local route, permission): the result says
   * nothing about the target and is not counted towards rise or fall.
   */
  inconclusive?: boolean;
}

/** An HTTP GET /healthz target, shared by every virtual service that relies on it. */
export interface HttpTarget {
  /** `kind|node|port` */
  key: string;
  kind: 'kube-proxy' | 'service';
  node: string;
  address: string;
  port: number;
  path: string;
  /** Distinct policies of the virtual services that use it, by policy key. */
  policies: Map<string, Policy>;
  /** The shortest interval and the longest timeout among its policies. */
  intervalMs: number;
  timeoutMs: number;
  /** Virtual services that use it (for the API and Events). */
  consumers: number;
}

/** One DR path check unit: this node, reached through this virtual service's VIP and port. */
export interface DrUnit {
  /** `node|vsKey` */
  key: string;
  node: string;
  nodeAddress: string;
  vsKey: string;
  vip: string;
  family: Family;
  port: number;
  policy: Policy;
}

/**
 * The DR units of one node, probed under one per-node budget (dr-lane.ts). At 10,000 virtual services ×
 * 100 nodes there are a million units, so a lane holds references to its virtual services and a unit object
 * is made only for the few picked each interval.
 */
export interface DrLane {
  node: string;
  /** Its DR-checked virtual services, sorted by key (the sweep order). */
  vss: DesiredVirtualService[];
  /** The node's real-server address per family. */
  addresses: { 4?: string; 6?: string };
  /** Distinct VIPs among them, counted up to NODE_VERDICT_VIPS (all the node verdict needs). */
  vipCount: number;
  /** The shortest interval and the longest timeout among the units' policies. */
  intervalMs: number;
  timeoutMs: number;
}

/** What a virtual service's real servers depend on. */
export interface VsHealthPlan {
  vsKey: string;
  policy: Policy;
  /** The HTTP target for a node (kube-proxy or the Service's healthCheckNodePort), if any. */
  httpKind: 'kube-proxy' | 'service' | undefined;
  httpPort: number | undefined;
  /** DR path units exist for its nodes. */
  dr: boolean;
}

export interface ProbePlan {
  http: Map<string, HttpTarget>;
  lanes: Map<string, DrLane>;
  vs: Map<string, VsHealthPlan>;
}

export const httpTargetKey = (kind: 'kube-proxy' | 'service', node: string, port: number): string => `${kind}|${node}|${port}`;
export const pairKey = (node: string, vsKey: string): string => `${node}|${vsKey}`;
