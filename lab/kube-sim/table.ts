// Server-side printing (meta.k8s.io/v1 Table), which `kubectl get` asks for. Services get the real
// columns; other types get the columns their real printers lead with, or NAME and AGE.
import { getPath, isObject, type Json, type JsonObject } from './json.js';
import type { ResourceType } from './resources.js';

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  format?: string;
  description: string;
  priority?: number;
  cell: (o: JsonObject, now: number) => Json;
}

const name: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', cell: (o) => String(getPath(o, 'metadata.name') ?? '') };
const age: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', cell: (o, now) => ageOf(o, now) };

function ageOf(o: JsonObject, now: number): string {
  const ts = getPath(o, 'metadata.creationTimestamp');
  return typeof ts === 'string' ? humanDuration(now - Date.parse(ts)) : '<unknown>';
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (y < 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

function externalIP(o: JsonObject): string {
  const spec = (o.spec ?? {}) as JsonObject;
  const external = Array.isArray(spec.externalIPs) ? spec.externalIPs.map(String) : [];
  switch (spec.type) {
    case 'ClusterIP':
    case 'NodePort':
      return external.length > 0 ? external.join(',') : '<none>';
    case 'LoadBalancer': {
      const ingress = getPath(o, 'status.loadBalancer.ingress');
      const ips = Array.isArray(ingress) ? ingress.filter(isObject).map((i) => String(i.ip ?? i.hostname ?? '')).filter((x) => x !== '') : [];
      const all = [...ips, ...external];
      return all.length > 0 ? all.join(',') : '<pending>';
    }
    case 'ExternalName':
      return String(spec.externalName ?? '');
    default:
      return '<unknown>';
  }
}

function portsOf(o: JsonObject): string {
  const ports = getPath(o, 'spec.ports');
  if (!Array.isArray(ports) || ports.length === 0) return '<none>';
  return ports
    .filter(isObject)
    .map((p) => (p.nodePort ? `${String(p.port)}:${String(p.nodePort)}/${String(p.protocol)}` : `${String(p.port)}/${String(p.protocol)}`))
    .join(',');
}

function selectorOf(o: JsonObject): string {
  const sel = getPath(o, 'spec.selector');
  if (!isObject(sel) || Object.keys(sel).length === 0) return '<none>';
  return Object.entries(sel)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(',');
}

function nodeStatus(o: JsonObject): string {
  const conds = getPath(o, 'status.conditions');
  const ready = Array.isArray(conds) ? conds.filter(isObject).find((c) => c.type === 'Ready') : undefined;
  const s = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
  return getPath(o, 'spec.unschedulable') === true ? `${s},SchedulingDisabled` : s;
}

function nodeAddress(o: JsonObject, type: string): string {
  const addrs = getPath(o, 'status.addresses');
  const found = Array.isArray(addrs) ? addrs.filter(isObject).find((a) => a.type === type) : undefined;
  return found ? String(found.address) : '<none>';
}

const COLUMNS: Record<string, Column[]> = {
  '/services': [
    name,
    { name: 'Type', type: 'string', description: 'type determines how the Service is exposed.', cell: (o) => String(getPath(o, 'spec.type') ?? '') },
    { name: 'Cluster-IP', type: 'string', description: 'clusterIP is the IP address of the service.', cell: (o) => String(getPath(o, 'spec.clusterIP') || '<none>') },
    { name: 'External-IP', type: 'string', description: 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.', cell: externalIP },
    { name: 'Port(s)', type: 'string', description: 'The list of ports that are exposed by this service.', cell: portsOf },
    age,
    { name: 'Selector', type: 'string', priority: 1, description: 'Route service traffic to pods with label keys and values matching this selector.', cell: selectorOf },
  ],
  '/nodes': [
    name,
    { name: 'Status', type: 'string', description: 'The status of the node', cell: nodeStatus },
    { name: 'Roles', type: 'string', description: 'The roles of the node', cell: (o) => rolesOf(o) },
    age,
    { name: 'Version', type: 'string', description: 'Kubelet Version reported by the node.', cell: (o) => String(getPath(o, 'status.nodeInfo.kubeletVersion') ?? '') },
    { name: 'Internal-IP', type: 'string', priority: 1, description: 'List of addresses reachable to the node.', cell: (o) => nodeAddress(o, 'InternalIP') },
    { name: 'External-IP', type: 'string', priority: 1, description: 'List of addresses reachable to the node.', cell: (o) => nodeAddress(o, 'ExternalIP') },
  ],
  '/namespaces': [name, { name: 'Status', type: 'string', description: 'The status of the namespace', cell: (o) => String(getPath(o, 'status.phase') ?? '') }, age],
  'apps/deployments': [
    name,
    { name: 'Ready', type: 'string', description: 'Number of the pod with ready state', cell: (o) => `${Number(getPath(o, 'status.readyReplicas') ?? 0)}/${Number(getPath(o, 'spec.replicas') ?? 1)}` },
    { name: 'Up-to-date', type: 'integer', description: 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.', cell: (o) => Number(getPath(o, 'status.updatedReplicas') ?? 0) },
    { name: 'Available', type: 'integer', description: 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.', cell: (o) => Number(getPath(o, 'status.availableReplicas') ?? 0) },
    age,
  ],
  'discovery.k8s.io/endpointslices': [
    name,
    { name: 'AddressType', type: 'string', description: 'The IP protocol for this slice', cell: (o) => String(o.addressType ?? '') },
    { name: 'Ports', type: 'string', description: 'The ports for this slice', cell: (o) => (Array.isArray(o.ports) && o.ports.length > 0 ? o.ports.filter(isObject).map((p) => String(p.port)).join(',') : '<unset>') },
    { name: 'Endpoints', type: 'string', description: 'First 3 addresses of the endpoints', cell: (o) => endpointsOf(o) },
    age,
  ],
  'coordination.k8s.io/leases': [name, { name: 'Holder', type: 'string', description: 'The holder of the lease', cell: (o) => String(getPath(o, 'spec.holderIdentity') ?? '') }, age],
};

function rolesOf(o: JsonObject): string {
  const labels = getPath(o, 'metadata.labels');
  const roles = isObject(labels) ? Object.keys(labels).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice('node-role.kubernetes.io/'.length)) : [];
  return roles.length > 0 ? roles.sort().join(',') : '<none>';
}

function endpointsOf(o: JsonObject): string {
  const addrs = Array.isArray(o.endpoints) ? o.endpoints.filter(isObject).flatMap((e) => (Array.isArray(e.addresses) ? e.addresses.map(String) : [])) : [];
  if (addrs.length === 0) return '<unset>';
  return addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(',');
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function toTable(t: ResourceType, objects: JsonObject[], listMeta: JsonObject, include: IncludeObject, now = Date.now()): JsonObject {
  const cols = COLUMNS[`${t.group}/${t.plural}`] ?? [name, age];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description, priority: c.priority ?? 0 })),
    rows: objects.map((o) => {
      const row: JsonObject = { cells: cols.map((c) => c.cell(o, now)) };
      if (include === 'Object') row.object = o;
      else if (include === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata ?? {} };
      return row;
    }),
  };
}

/** Whether the Accept header asks for a Table (kubectl get sends "application/json;as=Table;v=v1;g=meta.k8s.io,..."). */
export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && (params.includes('v=v1') || params.includes('v=v1beta1')) && params.includes('g=meta.k8s.io');
  });
}
