// The soak's fixed world: LB hosts, nodes, pools, VRRP groups and daemon timings. The fixture builds it
// in the micro-VM, the generator draws Service specs against it, and the invariant checks judge against it,
// so all three agree by construction.

export interface SoakHost {
  name: 'lb1' | 'lb2';
  ip: string;
}

export interface SoakPool {
  name: string;
  /** Inclusive IPv4 range, last octets within 192.0.2.0/24. */
  first: number;
  last: number;
  autoAssign: boolean;
}

export interface SoakGroup {
  name: string;
  virtualRouterId: number;
  /** Priority per host; alternating, so each host is preferred for one group (active-active). */
  priority: Record<SoakHost['name'], number>;
}

export const NAMESPACE = 'default';
export const API_HOST = { name: 'api', ip: '198.51.100.5', port: 6443 } as const;
export const HOSTS: readonly SoakHost[] = [
  { name: 'lb1', ip: '198.51.100.2' },
  { name: 'lb2', ip: '198.51.100.3' },
];
export const NODES = [
  { name: 'node-1', ip: '198.51.100.11' },
  { name: 'node-2', ip: '198.51.100.12' },
  { name: 'node-3', ip: '198.51.100.13' },
] as const;
export const NODE_NAMES: readonly string[] = NODES.map((n) => n.name);

/** Pools in config order. `default` is small on purpose, so churn spills over into `extra`. */
export const POOLS: readonly SoakPool[] = [
  { name: 'default', first: 1, last: 16, autoAssign: true },
  { name: 'extra', first: 64, last: 127, autoAssign: true },
  { name: 'manual', first: 200, last: 210, autoAssign: false },
];
export const VIP_PREFIX = '192.0.2.';

export const GROUPS: readonly SoakGroup[] = [
  { name: 'a', virtualRouterId: 51, priority: { lb1: 150, lb2: 100 } },
  { name: 'b', virtualRouterId: 52, priority: { lb1: 100, lb2: 150 } },
];
/** keepalived's marker address of a group on its master (docs/vrrp.md, "The marker address"). */
export const markerOf = (g: SoakGroup): string => `169.254.255.${g.virtualRouterId}`;

/** The daemon's global defaults the checks must know. */
export const DAEMON = {
  scheduler: 'wlc',
  forwarding: 'dr',
  notReadyGraceSeconds: 10,
  releaseQuarantineSeconds: 20,
  // keepalived's default, not the production 0.1 s: the soak checks correctness, and under emulation on a
  // loaded machine the guest misses sub-second adverts (a 0.7 s gap makes the backup take over), which
  // would keep the system from ever settling. Failover speed is the failover benchmark's business.
  advertIntervalSeconds: 1,
  resyncSeconds: 5,
} as const;

/** An IPVS service no Service owns, planted at start: the daemons must never touch it. */
export const FOREIGN_SERVICE = { protocol: 'TCP', address: '203.0.113.99', port: 22, scheduler: 'sh' } as const;

export const SCHEDULERS_VALID = ['rr', 'wrr', 'wlc', 'sh', 'mh'] as const;
export const FORWARDING_VALID = ['dr', 'tun', 'nat'] as const;
export const SHARING_KEYS = ['k1', 'k2'] as const;
export const PORT_CHOICES: readonly { port: number; protocol: 'TCP' | 'UDP' }[] = [
  { port: 80, protocol: 'TCP' },
  { port: 443, protocol: 'TCP' },
  { port: 8080, protocol: 'TCP' },
  { port: 53, protocol: 'UDP' },
];

export const poolOfAddress = (address: string): SoakPool | undefined => {
  if (!address.startsWith(VIP_PREFIX)) return undefined;
  const last = Number(address.slice(VIP_PREFIX.length));
  return POOLS.find((p) => last >= p.first && last <= p.last);
};

/** The daemon config for one LB host (the YAML the fixture writes). `slowdown`: how many times slower than UML
 * the backend runs the daemon's code (labTimeScale). */
export function daemonConfig(host: SoakHost, paths: { stateDir: string; runDir: string; kubeconfig: string }, slowdown = 1): Record<string, unknown> {
  const peer = HOSTS.find((h) => h.name !== host.name)!;
  return {
    hostName: host.name,
    interface: 'eth0',
    stateDir: paths.stateDir,
    // The production Lease timings (15 s / 10 s / 2 s): shorter ones make a daemon on the emulated, shared CPU
    // miss its renew deadline with no fault at all (seen: a 4 s deadline during a burst of four creates). Under
    // QEMU they stretch with the emulation: two daemons, the simulator and keepalived share one emulated CPU,
    // and a daemon starting up after a kill held the other's renewals past 10 s (seen twice, no guest stall).
    kubernetes: {
      kubeconfig: paths.kubeconfig, qps: 50, burst: 100,
      lease: { durationSeconds: 15 * slowdown, renewDeadlineSeconds: 10 * slowdown, retryPeriodSeconds: 2 * slowdown },
    },
    pools: POOLS.map((p) => ({
      name: p.name, addresses: [`${VIP_PREFIX}${p.first}-${VIP_PREFIX}${p.last}`], avoidBuggyIPs: true, autoAssign: p.autoAssign,
    })),
    ipam: { releaseQuarantineSeconds: DAEMON.releaseQuarantineSeconds },
    scheduler: DAEMON.scheduler,
    forwarding: DAEMON.forwarding,
    backends: { notReadyGraceSeconds: DAEMON.notReadyGraceSeconds },
    vrrp: {
      enabled: true,
      configPath: `${paths.runDir}/keepalived.conf`,
      garpRepeat: 1,
      syncDaemon: { enabled: true },
      groups: GROUPS.map((g) => ({
        name: g.name, virtualRouterId: g.virtualRouterId, priority: g.priority[host.name], advertIntervalSeconds: DAEMON.advertIntervalSeconds,
        peers: [peer.ip], unicastSourceIp: host.ip,
      })),
    },
    reconcile: { coalesceMs: 20, resyncSeconds: DAEMON.resyncSeconds },
    // As the ansible role leaves a real LB host (expire_nodest_conn, arp_ignore, arp_announce ...): otherwise
    // /readyz carries the host's sysctl warnings, which health.ready counts as unreported problems.
    sysctl: { manage: true },
    healthCheck: { enabled: false },
    // Debug: keepalived's own lines reach the daemon's log only at debug level (docs/vrrp.md).
    logging: { level: 'debug' },
  };
}
