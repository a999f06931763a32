// What kube-proxy would do on the lab's nodes, which run no kubelet and no kube-proxy: for every Service of
// type LoadBalancer whose status carries an IPv4 ingress IP with ipMode VIP (what ipvs-lb writes), each node
// accepts VIP:port the way kube-proxy's IPVS mode with strictARP does (the sample cluster's kube-proxy
// ConfigMap says so), and hands the traffic to the node's "pod", the lab's HTTP server:
//   - the VIP goes on the NOARP dummy kube-ipvs0 of every node (the topology set arp_ignore/arp_announce), so
//     the node takes packets for it but never answers ARP for it;
//   - port → targetPort: kube-proxy's node-local IPVS service would translate it; the lab uses a DNAT rule
//     (iptables nat PREROUTING) to the node's own server on targetPort, which keeps the client's address;
//   - externalTrafficPolicy Local: a node without a ready local endpoint drops the traffic (kube-proxy's local
//     IPVS service has no real server there): an iptables filter INPUT DROP rule.
// planKubeProxy() is pure; syncKubeProxy() reads the Services and EndpointSlices with kubectl and applies the
// plan (whole nat and filter tables replaced, kube-ipvs0 addresses added and removed), so it is idempotent.
import ipaddr from 'ipaddr.js';

export interface LabNode {
  name: string;
  ip: string;
}

/** The Service fields the stand-in reads (a subset of V1Service). */
export interface ServiceLike {
  metadata?: { name?: string; namespace?: string };
  spec?: {
    type?: string;
    externalTrafficPolicy?: string;
    ports?: Array<{ port: number; protocol?: string; targetPort?: number | string }>;
  };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; ipMode?: string }> } };
}

export interface EndpointSliceLike {
  metadata?: { namespace?: string; labels?: Record<string, string> };
  endpoints?: Array<{ nodeName?: string; conditions?: { ready?: boolean } }>;
}

export interface NodePlan {
  /** Addresses for kube-ipvs0, sorted. */
  vips: string[];
  /** iptables-restore input for the nat and filter tables (both replaced whole). */
  rules: string;
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function ipv4(value: string | undefined): string | undefined {
  return value !== undefined && ipaddr.IPv4.isValidFourPartDecimal(value) ? ipaddr.IPv4.parse(value).toString() : undefined;
}

export function planKubeProxy(services: readonly ServiceLike[], slices: readonly EndpointSliceLike[], nodes: readonly LabNode[]): Map<string, NodePlan> {
  const vips = new Map(nodes.map((n) => [n.name, new Set<string>()]));
  const nat = new Map(nodes.map((n) => [n.name, [] as string[]]));
  const drop = new Map(nodes.map((n) => [n.name, [] as string[]]));
  for (const svc of services) {
    if (svc.spec?.type !== 'LoadBalancer') continue;
    const id = `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`;
    const ingress = (svc.status?.loadBalancer?.ingress ?? []).filter((i) => (i.ipMode ?? 'VIP') === 'VIP').map((i) => ipv4(i.ip)).filter((v): v is string => v !== undefined);
    if (ingress.length === 0) continue;
    let withEndpoint: Set<string> | undefined;
    if (svc.spec.externalTrafficPolicy === 'Local') {
      withEndpoint = new Set();
      for (const s of slices) {
        if (s.metadata?.namespace !== svc.metadata?.namespace || s.metadata?.labels?.[SERVICE_NAME_LABEL] !== svc.metadata?.name) continue;
        for (const e of s.endpoints ?? []) if (e.nodeName && e.conditions?.ready !== false) withEndpoint.add(e.nodeName);
      }
    }
    for (const p of svc.spec.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP') continue;
      if (typeof p.targetPort === 'string' && !/^\d+$/.test(p.targetPort)) {
        throw new Error(`lab kube-proxy: ${id} port ${p.port}: named targetPort ${JSON.stringify(p.targetPort)} is not supported (the lab has no pods to look it up in)`);
      }
      const target = p.targetPort === undefined ? p.port : Number(p.targetPort);
      if (!Number.isInteger(p.port) || !Number.isInteger(target) || p.port < 1 || p.port > 65535 || target < 1 || target > 65535) {
        throw new Error(`lab kube-proxy: ${id}: bad port ${JSON.stringify(p)}`);
      }
      for (const vip of ingress) {
        for (const n of nodes) {
          vips.get(n.name)!.add(vip);
          const match = `-d ${vip}/32 -p tcp -m tcp --dport ${p.port}`;
          if (withEndpoint && !withEndpoint.has(n.name)) drop.get(n.name)!.push(`-A INPUT ${match} -j DROP`);
          else if (target !== p.port) nat.get(n.name)!.push(`-A PREROUTING ${match} -j DNAT --to-destination ${n.ip}:${target}`);
        }
      }
    }
  }
  const plans = new Map<string, NodePlan>();
  for (const n of nodes) {
    const rules = [
      '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ...nat.get(n.name)!, 'COMMIT',
      '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...drop.get(n.name)!, 'COMMIT', '',
    ].join('\n');
    plans.set(n.name, { vips: [...vips.get(n.name)!].sort(), rules });
  }
  return plans;
}

/** The guest script that applies plans whose files (NODE.rules, NODE.vips) were written to dir. */
export function applyScript(dir: string, nodes: readonly LabNode[]): string {
  for (const n of nodes) if (!/^[a-z][a-z0-9-]{0,12}$/.test(n.name)) throw new Error(`lab kube-proxy: bad node name ${JSON.stringify(n.name)}`);
  if (!/^\/[A-Za-z0-9/_.-]+$/.test(dir)) throw new Error(`lab kube-proxy: bad directory ${JSON.stringify(dir)}`);
  return `set -euo pipefail
modprobe -a iptable_nat iptable_filter xt_nat xt_tcpudp
for n in ${nodes.map((n) => n.name).join(' ')}; do
  ip netns exec "$n" iptables-legacy-restore < ${dir}/"$n".rules
  want=$(cat ${dir}/"$n".vips)
  have=$(ip -n "$n" -o -4 addr show dev kube-ipvs0 | awk '{ sub("/.*", "", $4); print $4 }')
  for v in $want; do grep -qxF "$v" <<<"$have" || ip -n "$n" addr add "$v"/32 dev kube-ipvs0; done
  for v in $have; do grep -qxF "$v" <<<"$want" || ip -n "$n" addr del "$v"/32 dev kube-ipvs0; done
done
`;
}
