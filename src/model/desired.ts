// The pure heart of the data plane: (Services, Nodes, EndpointSlices, allocations, config, time, health) →
// the virtual services every LB host should hold. Same inputs, same output, byte for byte (sorted), so every
// LB host computes the same table and a restart with nothing changed computes exactly what the kernel holds.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { Config, Forwarding, Scheduler } from '../config/types.js';
import { canonicalIp, parseIp } from '../ipam/address.js';
import { matchesSelector } from '../util/labels.js';
import { forwardingAnnotation, healthCheckAnnotations, schedulerAnnotation } from './annotations.js';
import {
  virtualServiceKey,
  type DesiredRealServer, type DesiredState, type DesiredVirtualService, type ModelProblem, type Protocol,
} from './types.js';

export const EXCLUDE_FROM_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** kube-proxy's default for sessionAffinityConfig.clientIP.timeoutSeconds. */
export const DEFAULT_AFFINITY_TIMEOUT = 10800;

export interface AllocatedAddress {
  address: string;
  pool: string;
}

export interface ModelInputs {
  /** Services that are ours (type LoadBalancer, our class); others must be filtered out before. */
  services: readonly V1Service[];
  nodes: readonly V1Node[];
  endpointSlices: readonly V1EndpointSlice[];
  /** Service UID → its addresses, as recorded in the ledger. */
  allocations: ReadonlyMap<string, readonly AllocatedAddress[]>;
  config: Pick<Config, 'forwarding' | 'scheduler' | 'pools' | 'backends'> & { healthCheck?: Pick<Config['healthCheck'], 'intervalSeconds' | 'timeoutSeconds'> };
  /** Milliseconds since the epoch; drain grace periods are measured against it. */
  now: number;
  /** Probe verdicts: 'down' drains the node for that virtual service; undefined means not probed (yet). */
  health?: (node: string, vsKey: string) => 'up' | 'down' | undefined;
  /** The VRRP group that carries a VIP. */
  vrrpGroupOf?: (vip: string, pool: string) => string | undefined;
}

export interface NodeView {
  name: string;
  addresses: { 4?: string; 6?: string };
  /** Ready, or NotReady since when (ms). */
  ready: boolean;
  notReadySince: number;
}

function nodeView(node: V1Node, addressType: string): NodeView | undefined {
  const name = node.metadata?.name;
  if (!name) return undefined;
  const addresses: NodeView['addresses'] = {};
  for (const a of node.status?.addresses ?? []) {
    if (a.type !== addressType) continue;
    const ip = parseIp(a.address);
    if (ip && addresses[ip.family] === undefined) addresses[ip.family] = canonicalIp(a.address);
  }
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const since = ready?.lastTransitionTime ? new Date(ready.lastTransitionTime).getTime() : 0;
  return { name, addresses, ready: ready?.status === 'True', notReadySince: Number.isFinite(since) ? since : 0 };
}

/** Nodes that may carry traffic at all: not excluded by label, matching the node selector, not being deleted. */
function eligibleNodes(inputs: ModelEnvironment): NodeView[] {
  const { backends } = inputs.config;
  const out: NodeView[] = [];
  for (const n of inputs.nodes) {
    const labels = n.metadata?.labels ?? {};
    if (n.metadata?.deletionTimestamp) continue;
    if (Object.prototype.hasOwnProperty.call(labels, EXCLUDE_FROM_LB_LABEL)) continue;
    if (backends.nodeSelector && !matchesSelector(backends.nodeSelector, labels)) continue;
    const v = nodeView(n, backends.addressType);
    if (v) out.push(v);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The slices of each Service (`namespace/name`), indexed once per computation instead of scanned per Service. */
export function slicesByService(slices: readonly V1EndpointSlice[]): Map<string, V1EndpointSlice[]> {
  const out = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (name === undefined) continue;
    const key = `${s.metadata?.namespace ?? ''}/${name}`;
    const list = out.get(key);
    if (list) list.push(s);
    else out.set(key, [s]);
  }
  return out;
}

/** Ready local endpoints per node for one Service (externalTrafficPolicy: Local). */
function localEndpointCounts(slices: readonly V1EndpointSlice[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of slices) {
    for (const e of s.endpoints ?? []) {
      // A nil ready condition means ready (EndpointSlice API contract).
      if (!e.nodeName || e.conditions?.ready === false) continue;
      counts.set(e.nodeName, (counts.get(e.nodeName) ?? 0) + 1);
    }
  }
  return counts;
}

const protocolOf = (p: string | undefined): Protocol | undefined =>
  p === undefined || p === 'TCP' ? 'TCP' : p === 'UDP' ? 'UDP' : p === 'SCTP' ? 'SCTP' : undefined;

function schedulerFlags(scheduler: Scheduler): string[] {
  // mh-port spreads one client's flows over nodes; mh-fallback sends a flow whose node is drained (weight 0)
  // to the next node in the Maglev table instead of dropping it. Both keep every LB host's choice identical.
  return scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : [];
}

export const serviceId = (s: V1Service): string => `${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;


/** What every Service's virtual services depend on besides the Service itself: nodes, config, time, health. */
export type ModelEnvironment = Omit<ModelInputs, 'services' | 'endpointSlices' | 'allocations'>;

/** The environment prepared once for any number of per-Service computations. */
export interface ModelContext {
  env: ModelEnvironment;
  nodes: NodeView[];
  graceMs: number;
  pools: Map<string, Config['pools'][number]>;
  /** Real-server lists shared by every virtual service whose real servers cannot differ (see serviceModel). */
  shared: Map<string, DesiredRealServer[]>;
  /** When the next NotReady node's grace period ends (the model changes then without any event). */
  nextDeadline: number | undefined;
}

export function modelContext(env: ModelEnvironment): ModelContext {
  const nodes = eligibleNodes(env);
  const graceMs = env.config.backends.notReadyGraceSeconds * 1000;
  let nextDeadline: number | undefined;
  for (const n of nodes) {
    if (n.ready) continue;
    const end = n.notReadySince + graceMs;
    if (end > env.now && (nextDeadline === undefined || end < nextDeadline)) nextDeadline = end;
  }
  return { env, nodes, graceMs, pools: new Map(env.config.pools.map((p) => [p.name, p])), shared: new Map(), nextDeadline };
}

/** One Service's part of the desired state, before clashes with other Services are settled. */
export interface ServiceModel {
  /** `namespace/name`. */
  id: string;
  uid: string;
  /** Creation time (ms): the older Service keeps a (VIP, protocol, port) both ask for. */
  createdMs: number;
  /** Its virtual services, each key once. */
  entries: DesiredVirtualService[];
  /** Problems with its own inputs (annotations, NAT without nodePort, no node of the VIP's family). */
  problems: ModelProblem[];
}

export function createdMsOf(svc: V1Service): number {
  const t = svc.metadata?.creationTimestamp ? new Date(svc.metadata.creationTimestamp).getTime() : 0;
  return Number.isNaN(t) ? 0 : t;
}

/** Older first; the UID breaks ties, so every LB host settles a clash the same way. */
export const olderFirst = (a: Pick<ServiceModel, 'createdMs' | 'uid'>, b: Pick<ServiceModel, 'createdMs' | 'uid'>): number =>
  a.createdMs !== b.createdMs ? a.createdMs - b.createdMs : a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0;

/** The virtual services one Service asks for; undefined when it has no address (yet) or no UID. */
export function serviceModel(ctx: ModelContext, svc: V1Service, slices: readonly V1EndpointSlice[], addresses: readonly AllocatedAddress[] | undefined): ServiceModel | undefined {
  const inputs = ctx.env;
  const uid = svc.metadata?.uid;
  const id = serviceId(svc);
  if (!uid || !addresses || addresses.length === 0) return undefined;
  const problems: ModelProblem[] = [];
  const entries: DesiredVirtualService[] = [];
  const keys = new Set<string>();
  const { nodes, graceMs, pools, shared } = ctx;
  const annotations = svc.metadata?.annotations;

  const sched = schedulerAnnotation(annotations);
  if (sched.problem) problems.push({ service: id, reason: 'InvalidAnnotation', message: sched.problem });
  const fwd = forwardingAnnotation(annotations);
  if (fwd.problem) problems.push({ service: id, reason: 'InvalidAnnotation', message: fwd.problem });
  const hc = healthCheckAnnotations(annotations, inputs.config.healthCheck ?? { intervalSeconds: 2, timeoutSeconds: 1 });
  for (const message of hc.problems) problems.push({ service: id, reason: 'InvalidAnnotation', message });

  const local = svc.spec?.externalTrafficPolicy === 'Local';
  const localCounts = local ? localEndpointCounts(slices) : undefined;
  const affinity = svc.spec?.sessionAffinity === 'ClientIP'
    ? (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT)
    : undefined;

  for (const alloc of addresses) {
    const ip = parseIp(alloc.address);
    if (!ip) continue;
    const vip = canonicalIp(alloc.address)!;
    const pool = pools.get(alloc.pool);
    const scheduler: Scheduler = sched.value ?? pool?.scheduler ?? inputs.config.scheduler;
    const forwarding: Forwarding = fwd.value ?? pool?.forwarding ?? inputs.config.forwarding;
    const familyNodes = nodes.filter((n) => n.addresses[ip.family] !== undefined);
    if (familyNodes.length === 0 && nodes.length > 0) {
      problems.push({ service: id, reason: 'NoBackendFamily', message: `no eligible node has an IPv${ip.family} ${inputs.config.backends.addressType} for VIP ${vip}` });
    }

    for (const port of svc.spec?.ports ?? []) {
      const protocol = protocolOf(port.protocol);
      if (!protocol) continue;
      const key = virtualServiceKey(protocol, vip, port.port);
      if (keys.has(key)) {
        problems.push({ service: id, reason: 'PortConflict', message: `${key} is already served for ${id}` });
        continue;
      }
      if (forwarding === 'nat' && !port.nodePort) {
        problems.push({ service: id, reason: 'InvalidAnnotation', message: `forwarding nat needs a nodePort for port ${port.port}/${protocol}, and the Service has none (allocateLoadBalancerNodePorts: false?)` });
        continue;
      }
      keys.add(key);
      // Virtual services whose real servers cannot differ (no Local policy, no node probed down for this
      // key) share one list: 10,000 Services x 500 nodes is then 500 real servers per (family, port), not
      // 5 million objects. The lists are read-only for every consumer.
      const targetPort = forwarding === 'nat' ? port.nodePort! : port.port;
      const shareKey = !localCounts && !(inputs.health && familyNodes.some((n) => n.ready && inputs.health!(n.name, key) === 'down')) ? `${ip.family}|${targetPort}` : undefined;
      const sharedList = shareKey === undefined ? undefined : shared.get(shareKey);
      const realServers: DesiredRealServer[] = sharedList ?? [];
      for (const n of sharedList ? [] : familyNodes) {
        let weight = 1;
        if (localCounts) {
          const count = localCounts.get(n.name) ?? 0;
          if (count === 0) continue;
          if (inputs.config.backends.weightByEndpoints) weight = Math.min(count, 65535);
        }
        let state: DesiredRealServer['state'] = 'serving';
        if (!n.ready) {
          // Drain first so established flows finish, then remove once the grace period is over.
          if (inputs.now - n.notReadySince >= graceMs) continue;
          state = 'draining-not-ready';
          weight = 0;
        } else if (inputs.health?.(n.name, key) === 'down') {
          state = 'draining-unhealthy';
          weight = 0;
        }
        realServers.push({ address: n.addresses[ip.family]!, port: targetPort, weight, node: n.name, state });
      }
      if (shareKey !== undefined && !sharedList) shared.set(shareKey, realServers);
      entries.push({
        key, vip, family: ip.family, protocol, port: port.port,
        scheduler, schedulerFlags: schedulerFlags(scheduler),
        persistenceTimeoutSeconds: affinity, forwarding,
        service: id, serviceUid: uid, pool: alloc.pool,
        vrrpGroup: inputs.vrrpGroupOf?.(vip, alloc.pool) ?? pool?.vrrpGroup,
        realServers,
        health: { trafficPolicy: local ? 'Local' : 'Cluster', healthCheckNodePort: svc.spec?.healthCheckNodePort ?? undefined, overrides: hc.value },
      });
    }
  }
  return { id, uid, createdMs: createdMsOf(svc), entries, problems };
}

/** The problem of a Service that asks for a (VIP, protocol, port) an older Service holds. */
export const portConflict = (loser: string, key: string, winner: string): ModelProblem => ({ service: loser, reason: 'PortConflict', message: `${key} is already served for ${winner}` });

/** The whole desired state at once (DesiredModel keeps it and recomputes only what changes). */
export function desiredState(inputs: ModelInputs): DesiredState {
  const ctx = modelContext(inputs);
  const slices = slicesByService(inputs.endpointSlices);
  const problems: ModelProblem[] = [];
  const byKey = new Map<string, DesiredVirtualService>();
  const models: ServiceModel[] = [];
  for (const svc of inputs.services) {
    const uid = svc.metadata?.uid;
    const m = serviceModel(ctx, svc, slices.get(serviceId(svc)) ?? [], uid ? inputs.allocations.get(uid) : undefined);
    if (m) models.push(m);
  }
  for (const m of models.sort(olderFirst)) {
    problems.push(...m.problems);
    for (const e of m.entries) {
      const owner = byKey.get(e.key);
      if (owner) problems.push(portConflict(m.id, e.key, owner.service));
      else byKey.set(e.key, e);
    }
  }
  const virtualServices = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { virtualServices, problems };
}
