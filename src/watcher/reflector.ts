// A list-and-watch cache that never gives up, in the manner of client-go's reflector. client-node's own
// informer stops for good after an error; this one lists (paginated), watches with bookmarks from the last
// resourceVersion, resumes after a dropped watch without relisting, relists after 410 Gone, backs off with
// jitter after any other error, and takes a token from the shared rate limiter for every request.
//
// Objects from a list come deserialized by client-node (timestamps as Date) and objects from a watch come as
// JSON (timestamps as strings); consumers read timestamps with `new Date(x)`, which accepts both.
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
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
  list: (opts: { limit: number; _continue?: string }) => Promise<ListPage<T>>;
  limiter: TokenBucket;
  log: Logger;
  onChange: (type: ChangeType, obj: T, old: T | undefined) => void;
  /** Called after every successful (re)list, with the cache complete. */
  onSynced?: () => void;
  pageSize?: number;
  /** Server-side watch timeout; a new watch resumes from the last resourceVersion. */
  watchTimeoutSeconds?: () => number;
  backoff?: Backoff;
  /** Drop fields the daemon never reads, to bound memory at 10,000 Services. */
  trim?: (obj: T) => T;
}

export interface ReflectorStats {
  kind: string;
  synced: boolean;
  connected: boolean;
  objects: number;
  resourceVersion: string;
  relists: number;
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
  readonly stats: ReflectorStats;

  constructor(private readonly opts: ReflectorOptions<T>) {
    this.backoff = opts.backoff ?? new Backoff({ initialMs: 250, maxMs: 30_000 });
    this.stats = { kind: opts.kind, synced: false, connected: false, objects: 0, resourceVersion: '', relists: 0, watchRestarts: 0, errors: 0, lastError: undefined, lastSyncAt: undefined };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
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

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        const started = Date.now();
        await this.watchOnce();
        this.stats.watchRestarts++;
        // A watch that ran a while proves the server healthy; only quick failures keep growing the backoff.
        if (Date.now() - started > 5000) this.backoff.reset();
      } catch (err) {
        if (this.stopped) break;
        this.stats.connected = false;
        this.stats.errors++;
        this.stats.lastError = describe(err);
        const delay = this.backoff.next();
        this.opts.log.warn({ kind: this.opts.kind, err: this.stats.lastError, retryInMs: delay }, 'list/watch failed; retrying');
        await sleep(delay, this.stopController.signal);
      }
    }
    this.stats.connected = false;
  }

  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      await this.opts.limiter.take();
      const page = await this.opts.list({ limit: this.opts.pageSize ?? 500, _continue: cont });
      for (const item of page.items) fresh.set(keyOf(item), this.opts.trim ? this.opts.trim(item) : trimManagedFields(item));
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    for (const [key, old] of this.store) if (!fresh.has(key)) this.opts.onChange('delete', old, old);
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      if (!old) this.opts.onChange('add', obj, undefined);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.opts.onChange('update', obj, old);
    }
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    this.resourceVersion = rv;
    this.stats.relists++;
    this.stats.synced = true;
    this.stats.objects = this.store.size;
    this.stats.resourceVersion = rv;
    this.stats.lastSyncAt = Date.now();
    this.stats.connected = true;
    this.backoff.reset();
    this.opts.onSynced?.();
  }

  private apply(type: string, obj: T): void {
    const key = keyOf(obj);
    const old = this.store.get(key);
    if (type === 'DELETED') {
      this.store.delete(key);
      this.opts.onChange('delete', obj, old);
    } else {
      const trimmed = this.opts.trim ? this.opts.trim(obj) : trimManagedFields(obj);
      this.store.set(key, trimmed);
      this.opts.onChange(old ? 'update' : 'add', trimmed, old);
    }
    this.stats.objects = this.store.size;
  }

  private async watchOnce(): Promise<void> {
    await this.opts.limiter.take();
    const timeout = this.opts.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300);
    const watch = new Watch(this.opts.kubeConfig);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      // A silent half-open connection would never end; bookmarks arrive at least every minute from a
      // healthy server, so silence well past the timeout means the connection is dead.
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish(new Error(`no data from the API server for ${timeout + 30} s`)), (timeout + 30) * 1000);
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
        } else if (err) reject(err);
        else resolve();
      };
      arm();
      watch
        .watch(
          this.opts.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeout },
          (type: string, obj: T & { code?: number; message?: string }) => {
            arm();
            switch (type) {
              case 'ADDED':
              case 'MODIFIED':
              case 'DELETED':
                this.apply(type, obj);
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
          },
          (err: unknown) => finish(err ?? undefined),
        )
        .then((controller: AbortController) => {
          this.stats.connected = true;
          this.abortWatch = () => controller.abort();
          if (settled || this.stopped) controller.abort();
        })
        .catch(finish);
    });
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { statusCode?: number; code?: number | string }).statusCode ?? (err as { code?: number | string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
