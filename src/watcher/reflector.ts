// A list-and-watch cache that never gives up, in the manner of client-go's reflector. client-node's own
// informer stops for good after an error; this one lists (paginated), watches with bookmarks from the last
// resourceVersion, resumes after a dropped watch without relisting, relists after 410 Gone, backs off with
// jitter after any other error (at least as long as a 429's Retry-After asks), relists every resync period to
// repair anything a bug or a lost event could have left wrong, and takes a token from the shared rate
// limiter for every request.
//
// Objects from a list come deserialized by client-node (timestamps as Date) and objects from a watch come as
// JSON (timestamps as strings); consumers read timestamps with `new Date(x)`, which accepts both.
import { ApiException, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../util/log.js';
import { Backoff, sleep } from '../util/backoff.js';
import type { TokenBucket } from '../util/rate-limit.js';

export type ChangeType = 'add' | 'update' | 'delete';

export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

export interface ReflectorOptions<T extends KubernetesObject> {
  kind: string;
  kubeConfig: KubeConfig;
  /** Watch path, e.g. /api/v1/services. */
  path: string;
  /** One page of the list; must give up after `timeoutMs` or when `signal` aborts (see requestTimeout()). */
  list: (opts: { limit: number; _continue?: string; timeoutMs: number; signal: AbortSignal }) => Promise<ListPage<T>>;
  limiter: TokenBucket;
  log: Logger;
  onChange: (type: ChangeType, obj: T, old: T | undefined) => void;
  /** Called after every successful (re)list, with the cache complete. */
  onSynced?: () => void;
  pageSize?: number;
  /** Timeout of one list request (default 60 s). */
  listTimeoutMs?: number;
  /** Server-side watch timeout; a new watch resumes from the last resourceVersion. */
  watchTimeoutSeconds?: () => number;
  /**
   * A watch silent for this long is taken for a dead connection and restarted (default 150 s: a healthy
   * kube-apiserver sends a BOOKMARK about once a minute). A false alarm costs one watch request.
   */
  silenceLimitSeconds?: number;
  /** Full relist period, jittered by ±10 % so LB hosts do not relist together (0 or absent: never). */
  resyncMs?: number;
  backoff?: Backoff;
  /** Drop fields the daemon never reads, to bound memory at 10,000 Services. */
  trim?: (obj: T) => T;
  /**
   * True when an update changes nothing the daemon reads (e.g. a Node heartbeat): the cache takes the new
   * object, but no change is reported.
   */
  equivalent?: (a: T, b: T) => boolean;
}

export interface ReflectorStats {
  kind: string;
  synced: boolean;
  connected: boolean;
  objects: number;
  resourceVersion: string;
  relists: number;
  resyncs: number;
  watchRestarts: number;
  errors: number;
  lastError: string | undefined;
  lastSyncAt: number | undefined;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export function trimManagedFields<T extends KubernetesObject>(o: T): T {
  if (o.metadata?.managedFields) delete o.metadata.managedFields;
  return o;
}

export class Reflector<T extends KubernetesObject> {
  private readonly store = new Map<string, T>();
  private resourceVersion = '';
  private stopped = true;
  private abortWatch: (() => void) | undefined;
  private readonly stopController = new AbortController();
  private readonly backoff: Backoff;
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Set by the resync timer: the running watch ends and the loop relists. */
  private resyncDue = false;
  /** Set when a handler failed on an event: the consumer missed a change, so relist rather than resume. */
  private relistDue = false;
  /** Keys whose add/update a handler failed on: the next relist reports them again whatever their version. */
  private readonly missed = new Set<string>();
  private listing = false;
  readonly stats: ReflectorStats;

  constructor(private readonly opts: ReflectorOptions<T>) {
    this.backoff = opts.backoff ?? new Backoff({ initialMs: 250, maxMs: 30_000 });
    this.stats = { kind: opts.kind, synced: false, connected: false, objects: 0, resourceVersion: '', relists: 0, resyncs: 0, watchRestarts: 0, errors: 0, lastError: undefined, lastSyncAt: undefined };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.armResync();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    this.stopController.abort();
    this.abortWatch?.();
    await this.loop;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(`${namespace ?? ''}/${name}`);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  get size(): number {
    return this.store.size;
  }

  private armResync(): void {
    const period = this.opts.resyncMs ?? 0;
    if (period <= 0 || this.stopped) return;
    this.resyncTimer = setTimeout(() => {
      // A list in progress is as fresh as a resync would be.
      if (this.listing) return this.armResync();
      this.resyncDue = true;
      // Ends the running watch cleanly; the loop relists and watches again from the new list.
      this.abortWatch?.();
    }, period * (0.9 + Math.random() * 0.2));
    this.resyncTimer.unref();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion || this.resyncDue || this.relistDue) {
          const resync = this.resyncDue;
          const repair = this.relistDue;
          // A handler that keeps failing must not turn into a relist loop.
          if (repair) await sleep(this.backoff.next(), this.stopController.signal);
          this.resyncDue = false;
          this.relistDue = false;
          await this.relist().catch((err: unknown) => {
            // Still due: the next attempt relists (a failed list leaves the old cache and resourceVersion).
            this.resyncDue ||= resync;
            this.relistDue ||= repair;
            throw err;
          });
          if (resync) {
            this.stats.resyncs++;
            this.armResync();
          }
        }
        const started = Date.now();
        const events = await this.watchOnce();
        this.stats.watchRestarts++;
        if (events > 0 || Date.now() - started > 5000) {
          // A watch that delivered or ran a while proves the server healthy.
          this.backoff.reset();
        } else if (this.resourceVersion && !this.resyncDue && !this.relistDue && !this.stopped) {
          // An empty watch that ended at once (a proxy closing it, a server shedding load): do not spin.
          await sleep(this.backoff.next(), this.stopController.signal);
        }
      } catch (err) {
        if (this.stopped) break;
        this.stats.connected = false;
        this.stats.errors++;
        this.stats.lastError = describe(err);
        const delay = Math.max(this.backoff.next(), retryAfterMs(err));
        this.opts.log.warn({ kind: this.opts.kind, err: this.stats.lastError, retryInMs: delay }, 'list/watch failed; retrying');
        await sleep(delay, this.stopController.signal);
      }
    }
    this.stats.connected = false;
  }

  private async relist(): Promise<void> {
    this.listing = true;
    try {
      await this.listAll();
    } finally {
      this.listing = false;
    }
  }

  private async listAll(): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      await this.opts.limiter.take();
      const page = await this.opts.list({ limit: this.opts.pageSize ?? 500, _continue: cont, timeoutMs: this.opts.listTimeoutMs ?? 60_000, signal: this.stopController.signal });
      for (const item of page.items) fresh.set(keyOf(item), this.trim(item));
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    const old = new Map(this.store);
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    this.resourceVersion = rv;
    this.stats.objects = this.store.size;
    this.stats.resourceVersion = rv;
    // Handlers run with the cache already complete, so a handler reading the cache sees the new list.
    const missed = new Set(this.missed);
    this.missed.clear();
    for (const [key, was] of old) if (!fresh.has(key)) this.notifyDelete(key, was);
    for (const [key, obj] of fresh) {
      const was = old.get(key);
      if (!was) this.notifyUpsert(key, 'add', obj, undefined);
      else if (missed.has(key) || (was.metadata?.resourceVersion !== obj.metadata?.resourceVersion && !this.opts.equivalent?.(was, obj))) this.notifyUpsert(key, 'update', obj, was);
    }
    this.stats.relists++;
    this.stats.synced = true;
    this.stats.lastSyncAt = Date.now();
    this.stats.connected = true;
    this.backoff.reset();
    this.opts.onSynced?.();
  }

  private trim(obj: T): T {
    return this.opts.trim ? this.opts.trim(obj) : trimManagedFields(obj);
  }

  private notify(type: ChangeType, obj: T, old: T | undefined): boolean {
    try {
      this.opts.onChange(type, obj, old);
      return true;
    } catch (err) {
      // The consumer missed a change; the relist that follows tells it again (see missed and notifyDelete).
      this.relistDue = true;
      this.opts.log.error({ kind: this.opts.kind, err: describe(err) }, 'change handler failed; relisting');
      return false;
    }
  }

  private notifyUpsert(key: string, type: 'add' | 'update', obj: T, old: T | undefined): void {
    if (!this.notify(type, obj, old)) this.missed.add(key);
  }

  private notifyDelete(key: string, was: T): void {
    // Kept in the cache until a handler took the deletion, so the next relist finds it gone again.
    if (!this.notify('delete', was, was) && !this.store.has(key)) this.store.set(key, was);
  }

  private apply(type: string, obj: T): void {
    const key = keyOf(obj);
    const old = this.store.get(key);
    if (type === 'DELETED') {
      this.store.delete(key);
      this.notifyDelete(key, old ?? obj);
    } else {
      const trimmed = this.trim(obj);
      this.store.set(key, trimmed);
      if (!old) this.notifyUpsert(key, 'add', trimmed, undefined);
      else if (!this.opts.equivalent?.(old, trimmed)) this.notifyUpsert(key, 'update', trimmed, old);
    }
    this.stats.objects = this.store.size;
  }

  /** One watch until it ends; resolves with the number of object events it delivered. */
  private async watchOnce(): Promise<number> {
    await this.opts.limiter.take();
    const timeout = this.opts.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300);
    const silenceMs = Math.min(timeout + 30, this.opts.silenceLimitSeconds ?? 150) * 1000;
    const watch = new Watch(this.opts.kubeConfig);
    let events = 0;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish(new Error(`watch silent for ${silenceMs / 1000} s; taking the connection for dead`)), silenceMs);
      };
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.abortWatch?.();
        this.abortWatch = undefined;
        const code = (err as { statusCode?: number } | undefined)?.statusCode;
        if (code === 410) {
          this.resourceVersion = '';
          resolve();
        } else if (err && !this.stopped && !this.resyncDue && !this.relistDue) reject(err);
        else resolve();
      };
      arm();
      // Set before the request is sent, so a resync or stop() arriving meanwhile ends this watch too.
      this.abortWatch = () => finish();
      watch
        .watch(
          this.opts.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeout },
          (type: string, obj: T & { code?: number; message?: string }) => {
            if (settled) return;
            arm();
            switch (type) {
              case 'ADDED':
              case 'MODIFIED':
              case 'DELETED':
                this.apply(type, obj);
                events++;
                break;
              case 'BOOKMARK':
                break;
              case 'ERROR':
                // The server ends the stream after an ERROR; 410 means our resourceVersion was compacted.
                if (obj.code === 410) this.resourceVersion = '';
                else this.opts.log.warn({ kind: this.opts.kind, status: obj }, 'watch error event');
                return;
              default:
                return;
            }
            const rv = obj.metadata?.resourceVersion;
            if (rv) {
              this.resourceVersion = rv;
              this.stats.resourceVersion = rv;
            }
            if (this.relistDue) finish();
          },
          (err: unknown) => finish(err ?? undefined),
        )
        .then((controller: AbortController) => {
          if (settled || this.stopped) {
            controller.abort();
            return;
          }
          this.stats.connected = true;
          this.abortWatch = () => {
            controller.abort();
            finish();
          };
        })
        .catch(finish);
    });
    return events;
  }
}

/** What a 429 or 503 asks for in Retry-After, in ms (0 when absent). */
function retryAfterMs(err: unknown): number {
  if (!(err instanceof ApiException) || (err.code !== 429 && err.code !== 503)) return 0;
  const header = Object.entries(err.headers ?? {}).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 60) * 1000 : 0;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { statusCode?: number; code?: number | string }).statusCode ?? (err as { code?: number | string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
