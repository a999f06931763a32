// What the REST API reads and triggers. The daemon implements it over its live parts (ledger, model, kernel,
// VRRP supervisor); the CLI's offline mode implements the read side over a read-only ledger. The API itself
// holds no state.
import type { SysctlFinding } from '../sysctl/index.js';

export interface PoolUsage {
  name: string;
  /** Decimal strings: an IPv6 /64 does not fit a JSON number. */
  size: string;
  used: number;
  free: string;
  orphaned: number;
  autoAssign: boolean;
  addresses: string[];
}

export interface AllocationRow {
  address: string;
  family: 4 | 6;
  pool: string;
  namespace: string;
  name: string;
  uid: string;
  sharingKey: string | null;
  ports: string[];
  allocatedAt: string;
  orphaned: boolean;
}

export interface RealServerView {
  address: string;
  port: number;
  node: string;
  weight: number;
  state: string;
  health: 'up' | 'down' | 'unknown';
  /** The probes behind `health` (docs/health.md), when health checking is on for the Service. */
  checks?: HealthCheckView[];
  activeConnections?: number;
  inactiveConnections?: number;
  /** Kernel counters of this destination (absent without a kernel data plane). */
  stats?: TrafficStats;
}

/** IPVS counters of a virtual service or one of its destinations; cps is the kernel's 2 s estimate. */
export interface TrafficStats {
  connections: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  cps: number;
}

export interface HealthCheckView {
  /** kube-proxy (node health port), service (healthCheckNodePort), dr (path through the VIP), dr-node (the node accepts no VIP traffic). */
  kind: 'kube-proxy' | 'service' | 'dr' | 'dr-node';
  target: string;
  state: 'up' | 'down' | 'unknown';
  since: string | null;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  lastError: string | null;
  lastCheck: string | null;
  /** Held down by flap damping until about then. */
  suppressedUntil: string | null;
}

export interface VirtualServiceView {
  key: string;
  vip: string;
  protocol: string;
  port: number;
  scheduler: string;
  forwarding: string;
  service?: string;
  owned: boolean;
  stats?: TrafficStats;
  realServers: RealServerView[];
}

export interface ServiceView {
  namespace: string;
  name: string;
  allocations: AllocationRow[];
  virtualServices: VirtualServiceView[];
  problems: string[];
}

export interface VrrpGroupView {
  name: string;
  state: string;
  since: string | null;
  transitions: number;
  vips: string[];
}

export interface AuditRow {
  id: number;
  at: string;
  action: string;
  reason: string;
  /** `namespace/name` */
  service: string | null;
  address: string | null;
  pool: string | null;
  host: string;
  term: number;
}

/** Newest first; pass `next` as `before` to get the following page (null at the end). */
export interface AuditPage {
  items: AuditRow[];
  next: number | null;
}

export interface HealthView {
  ready: boolean;
  checks: { ledger: boolean; kernel: boolean; reconciledOnce: boolean; kubernetes: boolean };
  /** Reasons for anything not fine, including the fail-static notice when the API server is unreachable. */
  messages: string[];
  /** The LB host's kernel settings as last checked (none without a kernel data plane); readiness does not
   * depend on them, the messages name those that are not as recommended. */
  sysctls?: SysctlFinding[];
}

/** What `ipvs-lb status` shows besides health, VRRP and pools: this host's role and the last reconcile. */
export interface StatusView {
  host: string;
  version: string;
  startedAt: string;
  /** Whether this host holds the allocator Lease, and who does. */
  allocator: { leader: boolean; holder: string | null; term: number };
  /** Services holding an address in the ledger, and how many of them have a reported problem. */
  services: { allocated: number; withProblems: number };
  lastReconcile: { at: string; operations: number; errors: number; durationMs: number } | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  limit: number;
}

export interface ApiState {
  pools(): PoolUsage[];
  allocations(filter: { namespace?: string; pool?: string; address?: string; offset: number; limit: number }): Page<AllocationRow>;
  allocation(address: string): AllocationRow[];
  service(namespace: string, name: string): Promise<ServiceView | undefined>;
  virtualServices(): Promise<VirtualServiceView[]>;
  vrrp(): VrrpGroupView[];
  events(page: { before?: number; limit: number }): AuditPage;
  health(): HealthView;
  status(): StatusView;
  reconcile(): Promise<{ operations: number; errors: number; durationMs: number }>;
  reloadConfig(): Promise<{ ok: true; summary: string } | { ok: false; problems: string[] }>;
  metrics(): Promise<{ contentType: string; body: string }>;
}
