// The daemon's view of the cluster: one reflector per kind, a single coalesced "something changed" signal,
// and the health of the connection (for fail-static reporting). Kernel state never depends on this being
// connected: a disconnected watcher keeps its last caches and the daemon keeps the last programmed state.
import type { V1EndpointSlice, V1Namespace, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import type { KubeClients } from './client.js';
import { Reflector, type ChangeType, type ReflectorStats } from './reflector.js';

export interface ClusterEvents {
  /** A Service was added, changed or deleted (deleted: the last known object). */
  service?: (type: ChangeType, svc: V1Service, old: V1Service | undefined) => void;
  /** Anything changed that may alter the desired kernel state. */
  changed?: () => void;
}

export class ClusterWatcher {
  readonly services: Reflector<V1Service>;
  readonly nodes: Reflector<V1Node>;
  readonly endpointSlices: Reflector<V1EndpointSlice>;
  readonly namespaces: Reflector<V1Namespace>;
  private synced = new Set<string>();
  private readonly syncWaiters: Array<() => void> = [];

  constructor(clients: KubeClients, log: Logger, events: ClusterEvents) {
    const changed = () => events.changed?.();
    const onSynced = (kind: string) => () => {
      this.synced.add(kind);
      if (this.synced.size === 4) for (const w of this.syncWaiters.splice(0)) w();
      changed();
    };
    const common = { kubeConfig: clients.kubeConfig, limiter: clients.limiter, log };
    this.services = new Reflector<V1Service>({
      ...common, kind: 'Service', path: '/api/v1/services',
      list: (o) => clients.core.listServiceForAllNamespaces(o),
      onChange: (t, s, old) => {
        events.service?.(t, s, old);
        changed();
      },
      onSynced: onSynced('Service'),
    });
    this.nodes = new Reflector<V1Node>({
      ...common, kind: 'Node', path: '/api/v1/nodes',
      list: (o) => clients.core.listNode(o),
      // Nodes post heartbeats every few seconds; only keep what the model reads so the diff stays cheap.
      trim: (n) => ({ metadata: { name: n.metadata?.name, labels: n.metadata?.labels, resourceVersion: n.metadata?.resourceVersion, deletionTimestamp: n.metadata?.deletionTimestamp }, status: { addresses: n.status?.addresses, conditions: n.status?.conditions?.filter((c) => c.type === 'Ready') } }),
      onChange: changed, onSynced: onSynced('Node'),
    });
    this.endpointSlices = new Reflector<V1EndpointSlice>({
      ...common, kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: (o) => clients.discovery.listEndpointSliceForAllNamespaces(o),
      onChange: changed, onSynced: onSynced('EndpointSlice'),
    });
    this.namespaces = new Reflector<V1Namespace>({
      ...common, kind: 'Namespace', path: '/api/v1/namespaces',
      list: (o) => clients.core.listNamespace(o),
      trim: (n) => ({ metadata: { name: n.metadata?.name, labels: n.metadata?.labels, resourceVersion: n.metadata?.resourceVersion } }),
      onChange: changed, onSynced: onSynced('Namespace'),
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
