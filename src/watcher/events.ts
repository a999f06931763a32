// Records core/v1 Events on Services, aggregated the way client-go's recorder does: the same reason and
// message for the same object within ten minutes bumps `count` instead of creating another Event, so a
// Service stuck in a failure loop does not flood etcd.
import { ApiException, PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Service } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import type { TokenBucket } from '../util/rate-limit.js';

export type EventReason =
  | 'IPAllocated' | 'IPReleased' | 'AllocationFailed' | 'InvalidAnnotation' | 'SharingConflict'
  | 'OrphanedAddress' | 'NoHealthyBackends' | 'HealthyBackends' | 'PortConflict' | 'NoBackendFamily';

const WARNING: ReadonlySet<EventReason> = new Set(['AllocationFailed', 'InvalidAnnotation', 'SharingConflict', 'OrphanedAddress', 'NoHealthyBackends', 'PortConflict', 'NoBackendFamily']);
const AGGREGATE_MS = 10 * 60 * 1000;

export interface EventRecorderOptions {
  api: CoreV1Api;
  limiter: TokenBucket;
  host: string;
  log: Logger;
  now?: () => number;
}

export class EventRecorder {
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();
  recorded = 0;
  failures = 0;

  constructor(private readonly o: EventRecorderOptions) {}

  /** Never throws: an Event is feedback, and failing to record one must not stop the work it describes. */
  async record(svc: V1Service, reason: EventReason, message: string): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    const ns = svc.metadata?.namespace ?? 'default';
    const key = `${svc.metadata?.uid}|${reason}|${message}`;
    const seen = this.recent.get(key);
    try {
      await this.o.limiter.take();
      if (seen && now - seen.at < AGGREGATE_MS) {
        seen.count++;
        seen.at = now;
        await this.o.api.patchNamespacedEvent(
          { name: seen.name, namespace: seen.namespace, body: { count: seen.count, lastTimestamp: new Date(now).toISOString() } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } else {
        const name = `${svc.metadata?.name ?? 'service'}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
        const stamp = new Date(now);
        await this.o.api.createNamespacedEvent({
          namespace: ns,
          body: {
            metadata: { name, namespace: ns },
            involvedObject: { apiVersion: 'v1', kind: 'Service', name: svc.metadata?.name, namespace: ns, uid: svc.metadata?.uid, resourceVersion: svc.metadata?.resourceVersion },
            reason, message, type: WARNING.has(reason) ? 'Warning' : 'Normal', count: 1,
            firstTimestamp: stamp, lastTimestamp: stamp,
            source: { component: 'ipvs-lb', host: this.o.host },
            reportingComponent: 'ipvs-lb.io/ipvs-lb', reportingInstance: this.o.host,
          },
        });
        this.recent.set(key, { name, namespace: ns, count: 1, at: now });
        this.prune(now);
      }
      this.recorded++;
    } catch (err) {
      this.failures++;
      // A 404 on the aggregate patch means the Event expired; forget it so the next one is created afresh.
      if (err instanceof ApiException && err.code === 404) this.recent.delete(key);
      this.o.log.warn({ service: `${ns}/${svc.metadata?.name}`, reason, err: err instanceof Error ? err.message : String(err) }, 'could not record Event');
    }
  }

  private prune(now: number): void {
    if (this.recent.size < 5000) return;
    for (const [k, v] of this.recent) if (now - v.at > AGGREGATE_MS) this.recent.delete(k);
  }
}
