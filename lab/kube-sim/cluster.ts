// A controllable cluster on top of the simulator, without controllers: the test says which nodes exist, which
// are Ready, and on which nodes a Service's endpoints run, and the objects appear as a kubelet and the
// EndpointSlice controller would have written them (watch events included).
import { parseIp } from '../../src/ipam/address.js';
import { isObject, type JsonObject } from './json.js';
import type { KubeSim } from './server.js';

export interface NodeSpec {
  /** One InternalIP per family (documentation ranges in fixtures, e.g. 198.51.100.0/24). */
  internalIP: string | string[];
  externalIP?: string;
  ready?: boolean;
  labels?: Record<string, string>;
  unschedulable?: boolean;
  kubeletVersion?: string;
}

export interface EndpointPlacement {
  node: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  /** Pod address; by default one from 203.0.113.0/25 (IPv4) or 2001:db8:ffff::/64 (IPv6). */
  address?: string;
}

const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function readyCondition(ready: boolean): JsonObject {
  const t = stamp();
  return ready
    ? { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: t, lastTransitionTime: t }
    : { type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready', lastHeartbeatTime: t, lastTransitionTime: t };
}

export class Cluster {
  private podCounter = 0;

  constructor(readonly sim: KubeSim) {}

  addNode(name: string, spec: NodeSpec): JsonObject {
    const ips = Array.isArray(spec.internalIP) ? spec.internalIP : [spec.internalIP];
    for (const ip of [...ips, ...(spec.externalIP ? [spec.externalIP] : [])]) if (!parseIp(ip)) throw new Error(`node ${name}: ${ip} is not an IP address`);
    return this.sim.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...(spec.labels ?? {}) },
      },
      spec: spec.unschedulable ? { unschedulable: true } : {},
      status: {
        addresses: [
          ...ips.map((address) => ({ type: 'InternalIP', address })),
          ...(spec.externalIP ? [{ type: 'ExternalIP', address: spec.externalIP }] : []),
          { type: 'Hostname', address: name },
        ],
        conditions: [readyCondition(spec.ready ?? true)],
        nodeInfo: { kubeletVersion: spec.kubeletVersion ?? 'v1.31.0', kubeProxyVersion: spec.kubeletVersion ?? 'v1.31.0', operatingSystem: 'linux', architecture: 'amd64', containerRuntimeVersion: 'containerd://1.7.20', osImage: 'Debian GNU/Linux 12 (bookworm)', kernelVersion: '6.1.0-23-amd64', machineID: '', systemUUID: '', bootID: '' },
      },
    });
  }

  /** Flips the node's Ready condition through the status subresource, as the kubelet or node controller does. */
  setNodeReady(name: string, ready: boolean): JsonObject {
    const node = this.sim.get('v1', 'Node', name);
    if (!node) throw new Error(`no node ${name}`);
    const status = (node.status ?? {}) as JsonObject;
    const others = Array.isArray(status.conditions) ? status.conditions.filter((c) => !(isObject(c) && c.type === 'Ready')) : [];
    return this.sim.update({ ...node, status: { ...status, conditions: [...others, readyCondition(ready)] } }, 'status');
  }

  setNodeLabels(name: string, labels: Record<string, string | null>): JsonObject {
    return this.sim.patch('v1', 'Node', name, undefined, { metadata: { labels } });
  }

  removeNode(name: string): void {
    this.sim.delete('v1', 'Node', name);
  }

  /**
   * Declares where the Service's endpoints run: one EndpointSlice per address family (named SERVICE-ipv4 /
   * SERVICE-ipv6), labelled kubernetes.io/service-name, owned by the Service, each endpoint with its nodeName
   * and conditions. Calling it again replaces the placement; an empty list leaves empty slices.
   */
  placeEndpoints(namespace: string, service: string, placements: EndpointPlacement[]): JsonObject[] {
    const svc = this.sim.get('v1', 'Service', service, namespace);
    if (!svc) throw new Error(`no Service ${namespace}/${service}`);
    const spec = (svc.spec ?? {}) as JsonObject;
    const families = Array.isArray(spec.ipFamilies) && spec.ipFamilies.length > 0 ? (spec.ipFamilies as string[]) : ['IPv4'];
    const ports: JsonObject[] = (Array.isArray(spec.ports) ? spec.ports : []).filter(isObject).map((p) => ({
      name: p.name ?? '',
      port: typeof p.targetPort === 'number' ? p.targetPort : (p.port ?? null),
      protocol: p.protocol ?? 'TCP',
    }));
    const out: JsonObject[] = [];
    for (const family of families) {
      const endpoints = placements.map((p, i) => {
        const node = this.sim.get('v1', 'Node', p.node);
        if (!node) throw new Error(`no node ${p.node}`);
        const address = p.address && (parseIp(p.address)?.family === 4) === (family === 'IPv4') ? p.address : this.podAddress(family);
        return {
          addresses: [address],
          conditions: { ready: p.ready ?? true, serving: p.serving ?? p.ready ?? true, terminating: p.terminating ?? false },
          nodeName: p.node,
          targetRef: { kind: 'Pod', namespace, name: `${service}-${p.node}-${i}` },
        };
      });
      const name = `${service}-${family.toLowerCase()}`;
      const body: JsonObject = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name,
          namespace,
          labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
          ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service, uid: (svc.metadata as JsonObject).uid ?? '', controller: true, blockOwnerDeletion: true }],
        },
        addressType: family,
        endpoints,
        ports,
      };
      const existing = this.sim.get('discovery.k8s.io/v1', 'EndpointSlice', name, namespace);
      out.push(existing ? this.sim.update({ ...body, metadata: { ...(body.metadata as JsonObject), resourceVersion: (existing.metadata as JsonObject).resourceVersion ?? '' } }) : this.sim.create(body));
    }
    return out;
  }

  /** The kube-proxy ConfigMap (kube-system/kube-proxy, key config.conf) that kubeadm clusters carry. */
  setKubeProxyConfig(opts: { mode: 'iptables' | 'ipvs' | 'nftables'; strictARP?: boolean }): JsonObject {
    const conf = [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'clusterCIDR: 2001:db8:1000::/56',
      `mode: ${opts.mode}`,
      'ipvs:',
      `  strictARP: ${opts.strictARP ?? false}`,
      '  scheduler: ""',
      '',
    ].join('\n');
    const body: JsonObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-proxy', namespace: 'kube-system', labels: { app: 'kube-proxy' } }, data: { 'config.conf': conf } };
    const existing = this.sim.get('v1', 'ConfigMap', 'kube-proxy', 'kube-system');
    return existing ? this.sim.update(body) : this.sim.create(body);
  }

  private podAddress(family: string): string {
    const n = this.podCounter++;
    if (family === 'IPv6') return `2001:db8:ffff::${(n + 1).toString(16)}`;
    return `203.0.113.${(n % 126) + 1}`;
  }
}

/** The sample cluster of `ipvs-lb lab`: three Ready workers on 198.51.100.11-13 and kube-proxy in IPVS mode with strictARP. */
export function sampleCluster(sim: KubeSim): Cluster {
  const c = new Cluster(sim);
  for (const [i, name] of ['node-1', 'node-2', 'node-3'].entries()) {
    c.addNode(name, { internalIP: `198.51.100.${11 + i}`, labels: { 'topology.kubernetes.io/zone': `zone-${String.fromCharCode(97 + i)}` } });
  }
  c.setKubeProxyConfig({ mode: 'ipvs', strictARP: true });
  return c;
}
