// The pure half of the HA lab: from a small spec to the lab topology and the daemon config of each LB host.
// Two LB hosts (lb1, lb2) run the real daemon, which runs the real keepalived; a plain host (kube) runs the
// Kubernetes API simulator with the sample cluster's three nodes (node-1..3 at 198.51.100.11-13, which are
// namespaces of the topology with echo and HTTP servers); a client sits behind the router.
import type { TopologySpec } from '../vm/topology.js';

export interface HaGroupSpec {
  /** VRRP group name (a DNS label). */
  name: string;
  virtualRouterId: number;
  /** Priority on lb1 and on lb2. */
  priorities: readonly [number, number];
  /** The pool whose VIPs this group carries (pool vrrpGroup): name and addresses inside HA_VIP_POOL_RANGE. */
  pool: { name: string; addresses: string[] };
}

export interface HaLabSpec {
  /** Default: one group `a` (vrid 51, lb1 150 / lb2 100) with pool `ga` = 192.0.2.10-192.0.2.19. */
  groups?: readonly HaGroupSpec[];
  /** keepalived advert_int of every group. Default 0.1. */
  advertIntervalSeconds?: number;
  /** Preemption for every group. Default false (nopreempt: a returning host does not take its groups back). */
  preempt?: boolean;
  /** IPVS scheduler. Default mh (Maglev: both LB hosts map a flow to the same node). */
  scheduler?: string;
  /** IPVS connection sync between the LB hosts. Default true. */
  syncDaemon?: boolean;
}

export interface HaHostInfo {
  name: 'lb1' | 'lb2';
  ip: string;
  index: 0 | 1;
}

export const HA_HOSTS: readonly [HaHostInfo, HaHostInfo] = [
  { name: 'lb1', ip: '198.51.100.2', index: 0 },
  { name: 'lb2', ip: '198.51.100.3', index: 1 },
];
export const HA_KUBE_HOST = { name: 'kube', ip: '198.51.100.5' } as const;
export const HA_CLIENT = { name: 'client1', ip: '203.0.113.10' } as const;
export const HA_NODES = [
  { name: 'node-1', ip: '198.51.100.11' },
  { name: 'node-2', ip: '198.51.100.12' },
  { name: 'node-3', ip: '198.51.100.13' },
] as const;
/** Every VIP a pool of the HA lab may hand out: the nodes accept all of them (kube-ipvs0). */
export const HA_VIP_POOL_RANGE = { first: 10, last: 49 } as const;
/** Ports every node serves: 80 answers who it is (HTTP), 7 echoes. */
export const HA_PORTS = { http: 80, echo: 7 } as const;
/** The simulator's port, on the kube host and forwarded to loopback on each LB host. */
export const HA_KUBE_PORT = 6443;
/** Guest directory of the lab's state (the guest's own tmpfs: FIFOs and SQLite need a real filesystem). */
export const HA_DIR = '/tmp/ha';

export const defaultGroups: readonly HaGroupSpec[] = [
  { name: 'a', virtualRouterId: 51, priorities: [150, 100], pool: { name: 'ga', addresses: ['192.0.2.10-192.0.2.19'] } },
];

/** The classic active-active pair: lb1 masters a, lb2 masters b. */
export const activeActiveGroups: readonly HaGroupSpec[] = [
  defaultGroups[0]!,
  { name: 'b', virtualRouterId: 52, priorities: [100, 150], pool: { name: 'gb', addresses: ['192.0.2.20-192.0.2.29'] } },
];

export interface HostPaths {
  dir: string;
  stateDir: string;
  configFile: string;
  /** keepalived.conf; its directory holds the FIFO and the pid files (src/vrrp/render.ts keepalivedPaths). */
  keepalivedConf: string;
  runDir: string;
}

export function hostPaths(host: HaHostInfo): HostPaths {
  const dir = `${HA_DIR}/${host.name}`;
  return { dir, stateDir: `${dir}/state`, configFile: `${dir}/config.yaml`, keepalivedConf: `${dir}/run/keepalived.conf`, runDir: `${dir}/run` };
}

export const kubeconfigPath = `${HA_DIR}/kube/kubeconfig`;

function lastOctet(a: string): number {
  const m = /^192\.0\.2\.(\d{1,3})$/.exec(a);
  if (!m) throw new Error(`ha lab: ${JSON.stringify(a)} is not an address in 192.0.2.0/24`);
  return Number(m[1]);
}

/** Addresses of a pool entry ("A", "A-B" or "A/32") inside the lab's VIP range, for validation. */
export function expandPoolEntry(entry: string): number[] {
  const [from, to] = entry.includes('-') ? entry.split('-', 2) as [string, string] : [entry.replace(/\/32$/, ''), entry.replace(/\/32$/, '')];
  const a = lastOctet(from);
  const b = lastOctet(to);
  if (b < a) throw new Error(`ha lab: pool entry ${entry} runs backwards`);
  if (a < HA_VIP_POOL_RANGE.first || b > HA_VIP_POOL_RANGE.last) {
    throw new Error(`ha lab: pool entry ${entry} is outside 192.0.2.${HA_VIP_POOL_RANGE.first}-192.0.2.${HA_VIP_POOL_RANGE.last}, the VIPs the lab's nodes accept`);
  }
  const out: number[] = [];
  for (let i = a; i <= b; i++) out.push(i);
  return out;
}

export interface CheckedHaSpec {
  groups: HaGroupSpec[];
  advertIntervalSeconds: number;
  preempt: boolean;
  scheduler: string;
  syncDaemon: boolean;
}

export function checkHaSpec(spec: HaLabSpec = {}): CheckedHaSpec {
  const groups = [...(spec.groups ?? defaultGroups)];
  if (groups.length === 0) throw new Error('ha lab: groups: at least one VRRP group is needed');
  const seen = new Set<number>();
  for (const [i, g] of groups.entries()) {
    if (g.priorities.length !== 2 || g.priorities.some((p) => !Number.isInteger(p) || p < 1 || p > 254)) {
      throw new Error(`ha lab: groups[${i}].priorities: two priorities 1-254, for lb1 and lb2 (got ${JSON.stringify(g.priorities)})`);
    }
    for (const e of g.pool.addresses) {
      for (const n of expandPoolEntry(e)) {
        if (seen.has(n)) throw new Error(`ha lab: groups[${i}].pool: 192.0.2.${n} is in two pools`);
        seen.add(n);
      }
    }
  }
  return {
    groups,
    advertIntervalSeconds: spec.advertIntervalSeconds ?? 0.1,
    preempt: spec.preempt ?? false,
    scheduler: spec.scheduler ?? 'mh',
    syncDaemon: spec.syncDaemon ?? true,
  };
}

/** The lab network: both LB hosts, the simulator's host, the sample cluster's nodes, one client. */
export function haTopology(): TopologySpec {
  const vips: string[] = [];
  for (let i = HA_VIP_POOL_RANGE.first; i <= HA_VIP_POOL_RANGE.last; i++) vips.push(`192.0.2.${i}`);
  return {
    lbs: HA_HOSTS.map((h) => ({ name: h.name, ip: h.ip })),
    hosts: [{ name: HA_KUBE_HOST.name, ip: HA_KUBE_HOST.ip }],
    // kube-proxy in IPVS mode with strictARP, as the sample cluster's kube-proxy config says.
    nodes: HA_NODES.map((n) => ({ name: n.name, ip: n.ip, vipMode: 'kube-ipvs0' as const, vips, http: [HA_PORTS.http], echo: [HA_PORTS.echo] })),
    clients: [{ name: HA_CLIENT.name, ip: HA_CLIENT.ip }],
  };
}

/** The daemon config of one LB host (an object for YAML). Extra pools may be added by a reconfiguration. */
export function haDaemonConfig(spec: CheckedHaSpec, host: HaHostInfo, extraPools: Array<{ name: string; addresses: string[]; vrrpGroup: string }> = []): Record<string, unknown> {
  const peer = HA_HOSTS[1 - host.index]!;
  const p = hostPaths(host);
  return {
    hostName: host.name,
    interface: 'eth0',
    stateDir: p.stateDir,
    // The allocator Lease and the resync keep their defaults: every request and every dump costs the
    // keepalived next door its timing under emulation, and nothing here tests their speed.
    kubernetes: { kubeconfig: kubeconfigPath },
    pools: [
      ...spec.groups.map((g) => ({ name: g.pool.name, addresses: g.pool.addresses, vrrpGroup: g.name, autoAssign: false })),
      ...extraPools.map((x) => ({ ...x, autoAssign: false })),
    ],
    scheduler: spec.scheduler,
    vrrp: {
      enabled: true,
      configPath: p.keepalivedConf,
      garpRepeat: 3,
      garpIntervalMs: 100,
      syncDaemon: { enabled: spec.syncDaemon, interface: 'eth0', syncId: 1 },
      groups: spec.groups.map((g) => ({
        name: g.name, virtualRouterId: g.virtualRouterId, priority: g.priorities[host.index], interface: 'eth0',
        advertIntervalSeconds: spec.advertIntervalSeconds, preempt: spec.preempt, peers: [peer.ip], unicastSourceIp: host.ip,
      })),
    },
    api: { listen: '127.0.0.1:9742' },
    reconcile: { coalesceMs: 20 },
    healthCheck: { enabled: false },
  };
}

/** A LoadBalancer Service of the sample cluster's whoami pods, with its VIP from `pool`. */
export function haService(name: string, pool: string): string {
  if (!/^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$/.test(name)) throw new Error(`ha lab: service name ${JSON.stringify(name)} must be a DNS label`);
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(pool)) throw new Error(`ha lab: pool ${JSON.stringify(pool)} must be a DNS label`);
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
  annotations: {ipvs-lb.io/address-pool: ${pool}}
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports:
    - {name: http, port: ${HA_PORTS.http}, targetPort: ${HA_PORTS.http}}
    - {name: echo, port: ${HA_PORTS.echo}, targetPort: ${HA_PORTS.echo}}
`;
}
