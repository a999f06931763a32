// The validated, defaulted configuration. Every field here is documented in docs/configuration.md.
import type { AddressRange } from '../ipam/range.js';

export type Forwarding = 'dr' | 'tun' | 'nat';
export const forwardingMethods: readonly Forwarding[] = ['dr', 'tun', 'nat'];
/** Schedulers of the Linux IPVS module (`ip_vs_<name>.ko`). */
export const schedulers = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export type Scheduler = (typeof schedulers)[number];
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof logLevels)[number];
export const nodeAddressTypes = ['InternalIP', 'ExternalIP'] as const;
export type NodeAddressType = (typeof nodeAddressTypes)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: LabelSelectorRequirement[];
}

export interface ServiceAllocation {
  /** Lower number = higher priority, as in MetalLB; pools without one come last. */
  priority: number | undefined;
  namespaces: string[];
  namespaceSelectors: LabelSelector[];
  serviceSelectors: LabelSelector[];
}

export interface PoolConfig {
  name: string;
  addresses: AddressRange[];
  avoidBuggyIPs: boolean;
  autoAssign: boolean;
  serviceAllocation: ServiceAllocation | undefined;
  forwarding: Forwarding | undefined;
  scheduler: Scheduler | undefined;
  vrrpGroup: string | undefined;
}

export interface KubernetesConfig {
  /** Path of a kubeconfig file; when unset, the in-cluster service-account token is used. */
  kubeconfig: string | undefined;
  inCluster: boolean;
  qps: number;
  burst: number;
  loadBalancerClass: string;
  /** When true, Services without a loadBalancerClass are left to another implementation. */
  strictClass: boolean;
  resyncSeconds: number;
  lease: {
    namespace: string;
    name: string;
    durationSeconds: number;
    renewDeadlineSeconds: number;
    retryPeriodSeconds: number;
  };
}

export interface VrrpGroupConfig {
  name: string;
  virtualRouterId: number;
  priority: number;
  interface: string;
  advertIntervalSeconds: number;
  preempt: boolean;
  preemptDelaySeconds: number;
  /** Unicast peers; empty means multicast adverts. */
  peers: string[];
  unicastSourceIp: string | undefined;
  trackInterfaces: string[];
}

export interface VrrpConfig {
  enabled: boolean;
  routerId: string;
  keepalivedPath: string;
  /** Where the rendered keepalived.conf is written (swapped atomically). */
  configPath: string;
  garpRepeat: number;
  garpIntervalMs: number;
  syncDaemon: { enabled: boolean; interface: string; syncId: number };
  groups: VrrpGroupConfig[];
}

export interface ApiConfig {
  listen: { host: string; port: number };
  tokenFile: string | undefined;
  tls: { certFile: string; keyFile: string } | undefined;
}

export interface HealthCheckConfig {
  enabled: boolean;
  intervalSeconds: number;
  timeoutSeconds: number;
  rise: number;
  fall: number;
  kubeProxyHealthPort: number | undefined;
  drPathCheck: boolean;
  drainGraceSeconds: number;
  maxConcurrentProbes: number;
  /** Holds a flapping target down until it has been stable for a while (exponential decay, as BGP damping). */
  flapDamping: FlapDampingConfig;
  /** How the DR path check steers probes through the VIP to one node (docs/health.md). */
  drPath: DrPathConfig;
}

export interface FlapDampingConfig {
  enabled: boolean;
  /** Each fall from up to down adds 1 to a penalty that halves every halfLifeSeconds. */
  halfLifeSeconds: number;
  /** At or above this penalty the target is held down even when its probes pass. */
  suppressThreshold: number;
  /** It is released when the penalty has decayed below this. */
  reuseThreshold: number;
  /** The longest a target is held down after its last flap. */
  maxSuppressSeconds: number;
}

export interface DrPathConfig {
  /** First firewall mark of the per-node IPVS fwmark services; one mark per node slot from here. */
  fwmarkBase: number;
  /** Source ports of DR probes (outside net.ipv4.ip_local_port_range); probesPerNode of them per node. */
  sourcePorts: { first: number; last: number };
  /** DR probes per node per interval, and the source ports reserved for each node. */
  probesPerNode: number;
  /** What installs the marking rule: nftables (the default), or iptables-legacy for kernels without nf_tables. */
  marker: DrPathMarker;
}

export const drPathMarkers = ['nft', 'iptables-legacy'] as const;
export type DrPathMarker = (typeof drPathMarkers)[number];

export interface Config {
  /** Path the config was read from, for messages and reloads. */
  source: string;
  hostName: string;
  interface: string;
  stateDir: string;
  kubernetes: KubernetesConfig;
  pools: PoolConfig[];
  ipam: { releaseQuarantineSeconds: number };
  forwarding: Forwarding;
  scheduler: Scheduler;
  backends: {
    addressType: NodeAddressType;
    nodeSelector: LabelSelector | undefined;
    notReadyGraceSeconds: number;
    weightByEndpoints: boolean;
  };
  /** verifyIntervalMs 0: no rolling verification between resyncs. */
  reconcile: { resyncSeconds: number; coalesceMs: number; verifyIntervalMs: number; verifyServices: number };
  sysctl: { manage: boolean };
  vrrp: VrrpConfig;
  api: ApiConfig;
  /** Bounds on /metrics: real servers that get series of their own (0: none; the rest show in the API only). */
  metrics: { maxRealServers: number };
  healthCheck: HealthCheckConfig;
  logging: { level: LogLevel };
}
