// Records core/v1 Events on Services, aggregated the way client-go's recorder does: the same reason and
// message for the same object within ten minutes bumps `count` instead of creating another Event, so a
// Service stuck in a failure loop does not flood etcd.
//
// Events share the process's QPS budget at the lowest priority: during a burst they wait until the status
// writes are out, so feedback never slows allocation and the budget holds. They go out from a queue by two
// senders (client-go's broadcaster uses one), so a burst of 10,000 opens no more connections than that. At
// most `maxQueued` Events wait; beyond that they are dropped and counted, so an API server that stays slow
// cannot grow the queue without bound.
import { ApiException, PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Service } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import type { TokenBucket } from '../util/rate-limit.js';
import { requestTimeout } from './client.js';

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
  /** Events waiting at most (default 10,000: one per Service of a large burst). */
  maxQueued?: number;
}

interface Pending {
  svc: V1Service;
  reason: EventReason;
  message: string;
  done: () => void;
}

const SENDERS = 2;

export class EventRecorder {
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();
  recorded = 0;
  failures = 0;
  dropped = 0;
  private queue: Pending[] = [];
  private head = 0;
  private senders = 0;

  constructor(private readonly o: EventRecorderOptions) {}

  /**
   * Queues an Event; resolves once it was sent (or failed, or was dropped). Never throws: an Event is feedback,
   * and failing to record one must not stop the work it describes.
   */
  record(svc: V1Service, reason: EventReason, message: string): Promise<void> {
    if (this.waiting >= (this.o.maxQueued ?? 10_000)) {
      if (this.dropped++ % 1000 === 0) this.o.log.warn({ queued: this.waiting, dropped: this.dropped }, 'too many Events waiting for the API; dropping');
      return Promise.resolve();
    }
    return new Promise<void>((done) => {
      this.queue.push({ svc, reason, message, done });
      if (this.senders < SENDERS) {
        this.senders++;
        void this.send();
      }
    });
  }

  private async send(): Promise<void> {
    try {
      while (this.head < this.queue.length) {
        const next = this.queue[this.head]!;
        this.queue[this.head++] = undefined as unknown as Pending;
        // Compact now and then, so the array does not keep every Event ever queued.
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        await this.o.limiter.take('background');
        await this.write(next.svc, next.reason, next.message);
        next.done();
      }
    } finally {
      this.senders--;
    }
  }

  private async write(svc: V1Service, reason: EventReason, message: string): Promise<void> {
    const ns = svc.metadata?.namespace ?? 'default';
    const key = `${svc.metadata?.uid}|${reason}|${message}`;
    const now = (this.o.now ?? Date.now)();
    const seen = this.recent.get(key);
    const options = requestTimeout(30_000);
    try {
      if (seen && now - seen.at < AGGREGATE_MS) {
        seen.count++;
        seen.at = now;
        await this.o.api.patchNamespacedEvent(
          { name: seen.name, namespace: seen.namespace, body: { count: seen.count, lastTimestamp: new Date(now).toISOString() } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch, options),
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
        }, options);
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

  /** Events queued and not yet sent. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  private pruneAt = 5000;

  /** Forgets Events older than the aggregation window; amortized O(1), and never more than 50,000 kept. */
  private prune(now: number): void {
    if (this.recent.size < this.pruneAt) return;
    for (const [k, v] of this.recent) if (now - v.at > AGGREGATE_MS) this.recent.delete(k);
    // Oldest first (insertion order): losing one only means the next identical Event is a new object.
    for (const k of this.recent.keys()) {
      if (this.recent.size <= 50_000) break;
      this.recent.delete(k);
    }
    this.pruneAt = Math.min(50_001, Math.max(5000, this.recent.size * 2));
  }
}
