// The daemon's view of the cluster: one reflector per kind, a single coalesced "something changed" signal,
// and the health of the connection (for fail-static reporting). Kernel state never depends on this being
// connected: a disconnected watcher keeps its last caches and the daemon keeps the last programmed state.
import type { V1EndpointSlice, V1Namespace, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { requestTimeout, type KubeClients } from './client.js';
import { Reflector, trimManagedFields, type ChangeType, type ReflectorStats } from './reflector.js';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** managedFields and kubectl's copy of the whole manifest are most of a Service's size; the daemon reads neither. */
export function trimService(s: V1Service): V1Service {
  trimManagedFields(s);
  if (s.metadata?.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _dropped, ...rest } = s.metadata.annotations;
    s.metadata.annotations = rest;
  }
  return s;
}

/** Nodes post status every few minutes; keep what the model reads, without the heartbeat times. */
export function trimNode(n: V1Node): V1Node {
  return {
    metadata: { name: n.metadata?.name, labels: n.metadata?.labels, resourceVersion: n.metadata?.resourceVersion, deletionTimestamp: n.metadata?.deletionTimestamp },
    status: {
      addresses: n.status?.addresses,
      conditions: n.status?.conditions?.filter((c) => c.type === 'Ready').map((c) => ({ type: c.type, status: c.status, lastTransitionTime: c.lastTransitionTime })),
    },
  };
}

/** The model reads which node has how many ready endpoints of a Service; targetRefs, hints and zones go. */
export function trimEndpointSlice(s: V1EndpointSlice): V1EndpointSlice {
  return {
    addressType: s.addressType,
    metadata: { name: s.metadata?.name, namespace: s.metadata?.namespace, labels: s.metadata?.labels, resourceVersion: s.metadata?.resourceVersion },
    endpoints: (s.endpoints ?? []).map((e) => ({ addresses: e.addresses, nodeName: e.nodeName, conditions: e.conditions })),
  };
}

/** Equal apart from resourceVersion: an update the daemon need not hear about. */
function sameContent<T extends { metadata?: { resourceVersion?: string } }>(a: T, b: T): boolean {
  const strip = (o: T) => JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return strip(a) === strip(b);
}

export interface ClusterWatcherOptions {
  /** Full relist of every cache (kubernetes.resyncSeconds). */
  resyncSeconds: number;
}

export interface ClusterEvents {
  /** A Service was added, changed or deleted (deleted: the last known object). */
  service?: (type: ChangeType, svc: V1Service, old: V1Service | undefined) => void;
  /** Every Service needs a fresh look: the Services were (re)listed, or Namespace labels changed. */
  allServices?: () => void;
  /** An EndpointSlice was added, changed or deleted (deleted: the last known object). */
  endpointSlice?: (type: ChangeType, slice: V1EndpointSlice, old: V1EndpointSlice | undefined) => void;
  /** Anything changed that may alter the desired kernel state. */
  changed?: () => void;
  /** A change that may alter every Service's part of it (a Node, a Namespace, a relist): `changed` too, but
   * without a per-object callback that says which Services it concerns. */
  everything?: () => void;
}

export class ClusterWatcher {
  readonly services: Reflector<V1Service>;
  readonly nodes: Reflector<V1Node>;
  readonly endpointSlices: Reflector<V1EndpointSlice>;
  readonly namespaces: Reflector<V1Namespace>;
  private synced = new Set<string>();
  private readonly syncWaiters: Array<() => void> = [];

  constructor(clients: KubeClients, log: Logger, events: ClusterEvents, opts: ClusterWatcherOptions = { resyncSeconds: 300 }) {
    const changed = () => events.changed?.();
    const everything = () => {
      events.everything?.();
      changed();
    };
    const allServices = () => {
      events.allServices?.();
      everything();
    };
    const onSynced = (kind: string, signal: () => void) => () => {
      this.synced.add(kind);
      if (this.synced.size === 4) for (const w of this.syncWaiters.splice(0)) w();
      signal();
    };
    const common = { kubeConfig: clients.kubeConfig, limiter: clients.limiter, log, resyncMs: opts.resyncSeconds * 1000 };
    this.services = new Reflector<V1Service>({
      ...common, kind: 'Service', path: '/api/v1/services',
      list: ({ timeoutMs, signal, ...o }) => clients.core.listServiceForAllNamespaces(o, requestTimeout(timeoutMs, undefined, signal)),
      trim: trimService,
      onChange: (t, s, old) => {
        events.service?.(t, s, old);
        changed();
      },
      onSynced: onSynced('Service', allServices),
    });
    this.nodes = new Reflector<V1Node>({
      ...common, kind: 'Node', path: '/api/v1/nodes',
      list: ({ timeoutMs, signal, ...o }) => clients.core.listNode(o, requestTimeout(timeoutMs, undefined, signal)),
      trim: trimNode, equivalent: sameContent,
      onChange: everything, onSynced: onSynced('Node', everything),
    });
    this.endpointSlices = new Reflector<V1EndpointSlice>({
      ...common, kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: ({ timeoutMs, signal, ...o }) => clients.discovery.listEndpointSliceForAllNamespaces(o, requestTimeout(timeoutMs, undefined, signal)),
      trim: trimEndpointSlice, equivalent: sameContent,
      onChange: (t, slice, old) => {
        events.endpointSlice?.(t, slice, old);
        changed();
      },
      onSynced: onSynced('EndpointSlice', everything),
    });
    this.namespaces = new Reflector<V1Namespace>({
      ...common, kind: 'Namespace', path: '/api/v1/namespaces',
      list: ({ timeoutMs, signal, ...o }) => clients.core.listNamespace(o, requestTimeout(timeoutMs, undefined, signal)),
      trim: (n) => ({ metadata: { name: n.metadata?.name, labels: n.metadata?.labels, resourceVersion: n.metadata?.resourceVersion } }),
      equivalent: sameContent,
      onChange: allServices, onSynced: onSynced('Namespace', allServices),
    });
  }

  private get all() {
    return [this.services, this.nodes, this.endpointSlices, this.namespaces];
  }

  start(): void {
    for (const r of this.all) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((r) => r.stop()));
  }

  /** Resolves once every kind has been listed at least once. */
  waitForSync(): Promise<void> {
    if (this.synced.size === 4) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get stats(): ReflectorStats[] {
    return this.all.map((r) => r.stats);
  }

  /** Connected means every watch is established; false while the API server is unreachable. */
  get connected(): boolean {
    return this.all.every((r) => r.stats.connected);
  }

  namespaceLabels(name: string): Record<string, string> | undefined {
    return this.namespaces.get(undefined, name)?.metadata?.labels;
  }
}
